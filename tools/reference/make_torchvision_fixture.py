#!/usr/bin/env python3
"""Make the PyTorch checkpoints that dermrobust's import tests load.

A ResNet-18 in torchvision's exact module layout (torchvision.models.resnet.BasicBlock, the same
parameter names as torchvision.models.resnet18) at 1/8 of the published widths (8, 16, 32, 64
channels) and 3 classes, randomly initialised with random batch-norm statistics, saved as
`tiny_resnet18.pth` (state dict) and `tiny_resnet18.safetensors`, with a fixed input and the
eval-mode logits in `tiny_resnet18_expected.json`.

Also, with `torchvision.models.vgg.VGG` and `torchvision.models.densenet.DenseNet` themselves:
- `tiny_vgg16_bn.safetensors`: VGG-16 with batch norm (torchvision's `vgg16_bn` layout) at 1/8 width
  (8, 16, 32, 64, 64 channels), its dense classifier shrunk to 16 units (same parameter names;
  dermrobust replaces it with a pooled head) and, in `tiny_vgg16_bn_expected.json`, the eval-mode
  feature map of `features` for the same input.
- `tiny_densenet121.pth`: DenseNet-121 (`densenet121` layout) with growth rate 8 and 16 initial
  features (1/4 width), 3 classes, and its eval-mode logits in `tiny_densenet121_expected.json`;
  `tiny_densenet121_legacy_names.safetensors`: the same weights under the older parameter names
  that torchvision's published DenseNet files use (`norm.1` for `norm1`).
Inputs (2 images of 48x48) are taken as already normalised.

Run (outside the project's build; needs torch, torchvision, safetensors):
    /tmp/torchenv/bin/python tools/reference/make_torchvision_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import re
import sys

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1
from safetensors.torch import save_file


class TinyResNet18(nn.Module):
    def __init__(self, widths=(8, 16, 32, 64), num_classes=3):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], 2, 1)
        self.layer2 = self._make_layer(widths[1], 2, 2)
        self.layer3 = self._make_layer(widths[2], 2, 2)
        self.layer4 = self._make_layer(widths[3], 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomise_batch_norm(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def fixed_input(size):
    x = torch.rand(2, 3, size, size)
    x[1] = x[1] ** 3
    return x


def dump(path, x, name, values):
    with open(path, "w") as f:
        json.dump({"torch_version": torch.__version__, "input_shape": list(x.shape), "input": x.flatten().tolist(),
                   "output_shape": list(values.shape), name: values.flatten().tolist()}, f)


def vgg_and_densenet(out):
    from torchvision.models.vgg import VGG, make_layers
    from torchvision.models.densenet import DenseNet

    torch.manual_seed(1)
    cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
    vgg = VGG(make_layers(cfg, batch_norm=True), num_classes=3)
    vgg.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 16), nn.ReLU(True), nn.Dropout(),
                                   nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, 3))
    randomise_batch_norm(vgg)
    vgg.eval()
    x = fixed_input(48)
    with torch.no_grad():
        features = vgg.features(x)
    save_file({k: v.contiguous() for k, v in vgg.state_dict().items()}, f"{out}/tiny_vgg16_bn.safetensors")
    dump(f"{out}/tiny_vgg16_bn_expected.json", x, "features", features)

    torch.manual_seed(2)
    dense = DenseNet(growth_rate=8, block_config=(6, 12, 24, 16), num_init_features=16, bn_size=4, num_classes=3)
    randomise_batch_norm(dense)
    with torch.no_grad():
        dense.classifier.weight.uniform_(-2.0, 2.0)
    dense.eval()
    x = fixed_input(48)
    with torch.no_grad():
        logits = dense(x)
    torch.save(dense.state_dict(), f"{out}/tiny_densenet121.pth")
    # The same weights under the legacy names of torchvision's published DenseNet files
    # (`denselayer1.norm.1.weight` for `denselayer1.norm1.weight`).
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v.contiguous() for k, v in dense.state_dict().items()}
    assert any(".norm.1." in k for k in legacy)
    save_file(legacy, f"{out}/tiny_densenet121_legacy_names.safetensors")
    dump(f"{out}/tiny_densenet121_expected.json", x, "logits", logits)
    print("densenet logits", logits)


def main(out):
    torch.manual_seed(0)
    model = TinyResNet18()
    randomise_batch_norm(model)
    with torch.no_grad():
        model.fc.weight.uniform_(-2.0, 2.0)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    x[1] = x[1] ** 3  # a darker, more contrasted second image
    with torch.no_grad():
        logits = model(x)
    sd = model.state_dict()
    torch.save(sd, f"{out}/tiny_resnet18.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, f"{out}/tiny_resnet18.safetensors")
    with open(f"{out}/tiny_resnet18_expected.json", "w") as f:
        json.dump({"torch_version": torch.__version__, "input_shape": list(x.shape),
                   "input": x.flatten().tolist(), "logits": logits.flatten().tolist()}, f)
    print("logits", logits)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    main(out)
    vgg_and_densenet(out)
