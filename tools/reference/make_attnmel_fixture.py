#!/usr/bin/env python3
"""Make the PyTorch reference of AttnMel-CNN that dermrobust's attention-model test loads.

The model is the authors' own `AttnVGG` (github.com/SaoYan/IPMI2019-AttnMel, networks.py; its
`AttentionBlock` and `forward` copied below unchanged, with `normalize_attn=False`, the sigmoid
attention of the published models), built on a torchvision VGG-16-with-batch-norm `features`
sequence at 1/8 width (8, 16, 32, 64, 64 channels) instead of the pretrained full-width one, so
the attention modules get 32 + 64 local and 64 global channels (256 attention filters, as the
paper). Batch-norm statistics and all weights are random (seed 3); the classifier's weights are
and attention modules' weights are made large so that logits and maps differ clearly between images
and positions.

Writes `tiny_attnmel.safetensors` (the state dict under the authors' names: `conv_block1.0.weight`,
`attn1.W_l.weight`, `cls.weight`, ...) and `tiny_attnmel_expected.json` with a fixed input of
2 x 3 x 64 x 64 (taken as already normalised), the eval-mode logits and both attention maps
(`a1` pool-3 8 x 8, `a2` pool-4 4 x 4).

Run (needs torch, torchvision, safetensors):
    /tmp/torchenv/bin/python tools/reference/make_attnmel_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models.vgg import make_layers

from make_torchvision_fixture import randomise_batch_norm


class AttentionBlock(nn.Module):
    def __init__(self, in_features_l, in_features_g, attn_features, up_factor, normalize_attn=True):
        super(AttentionBlock, self).__init__()
        self.up_factor = up_factor
        self.normalize_attn = normalize_attn
        self.W_l = nn.Conv2d(in_channels=in_features_l, out_channels=attn_features, kernel_size=1, padding=0, bias=False)
        self.W_g = nn.Conv2d(in_channels=in_features_g, out_channels=attn_features, kernel_size=1, padding=0, bias=False)
        self.phi = nn.Conv2d(in_channels=attn_features, out_channels=1, kernel_size=1, padding=0, bias=True)

    def forward(self, l, g):
        N, C, W, H = l.size()
        l_ = self.W_l(l)
        g_ = self.W_g(g)
        if self.up_factor > 1:
            g_ = F.interpolate(g_, scale_factor=self.up_factor, mode='bilinear', align_corners=False)
        c = self.phi(F.relu(l_ + g_))  # batch_sizex1xWxH
        # compute attn map
        if self.normalize_attn:
            a = F.softmax(c.view(N, 1, -1), dim=2).view(N, 1, W, H)
        else:
            a = torch.sigmoid(c)
        # re-weight the local feature
        f = torch.mul(a.expand_as(l), l)  # batch_sizexCxWxH
        if self.normalize_attn:
            output = f.view(N, C, -1).sum(dim=2)  # weighted sum
        else:
            output = F.adaptive_avg_pool2d(f, (1, 1)).view(N, C)  # global average pooling
        return a, output


class TinyAttnVGG(nn.Module):
    """The authors' AttnVGG with `features` of a 1/8-width vgg16_bn instead of the pretrained one."""

    def __init__(self, num_classes=2, normalize_attn=False):
        super().__init__()
        cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
        features = list(make_layers(cfg, batch_norm=True).children())
        self.conv_block1 = nn.Sequential(*features[0:6])
        self.conv_block2 = nn.Sequential(*features[7:13])
        self.conv_block3 = nn.Sequential(*features[14:23])
        self.conv_block4 = nn.Sequential(*features[24:33])
        self.conv_block5 = nn.Sequential(*features[34:43])
        self.cls = nn.Linear(in_features=64 + 64 + 32, out_features=num_classes, bias=True)
        self.attn1 = AttentionBlock(32, 64, 256, 4, normalize_attn=normalize_attn)
        self.attn2 = AttentionBlock(64, 64, 256, 2, normalize_attn=normalize_attn)

    def forward(self, x):
        block1 = self.conv_block1(x)       # /1
        pool1 = F.max_pool2d(block1, 2, 2)  # /2
        block2 = self.conv_block2(pool1)   # /2
        pool2 = F.max_pool2d(block2, 2, 2)  # /4
        block3 = self.conv_block3(pool2)   # /4
        pool3 = F.max_pool2d(block3, 2, 2)  # /8
        block4 = self.conv_block4(pool3)   # /8
        pool4 = F.max_pool2d(block4, 2, 2)  # /16
        block5 = self.conv_block5(pool4)   # /16
        pool5 = F.max_pool2d(block5, 2, 2)  # /32
        N, __, __, __ = pool5.size()
        # The authors' `self.pool = nn.AvgPool2d(7, stride=1)` is a global average pool at 224 px;
        # at 64 px pool-5 is 2 x 2, so the global average pool is written out.
        g = F.adaptive_avg_pool2d(pool5, 1).view(N, -1)
        a1, g1 = self.attn1(pool3, pool5)
        a2, g2 = self.attn2(pool4, pool5)
        g_hat = torch.cat((g, g1, g2), dim=1)  # batch_size x C
        out = self.cls(g_hat)
        return [out, a1, a2]


def main(out):
    torch.manual_seed(3)
    model = TinyAttnVGG()
    randomise_batch_norm(model)
    with torch.no_grad():
        model.cls.weight.uniform_(-2.0, 2.0)
        for attn in (model.attn1, model.attn2):
            attn.W_l.weight.uniform_(-0.5, 0.5)
            attn.W_g.weight.uniform_(-0.5, 0.5)
            attn.phi.weight.uniform_(-0.3, 0.3)
        model.attn1.phi.bias.fill_(0.3)
        model.attn2.phi.bias.fill_(-0.2)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    x[1] = x[1] ** 3
    with torch.no_grad():
        logits, a1, a2 = model(x)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/tiny_attnmel.safetensors")
    with open(f"{out}/tiny_attnmel_expected.json", "w") as f:
        json.dump({"torch_version": torch.__version__, "input_shape": list(x.shape), "input": x.flatten().tolist(),
                   "logits": logits.flatten().tolist(), "a1_shape": list(a1.shape), "a1": a1.flatten().tolist(),
                   "a2_shape": list(a2.shape), "a2": a2.flatten().tolist()}, f)
    print("logits", logits)
    print("a1 range", a1.min().item(), a1.max().item(), "a2 range", a2.min().item(), a2.max().item())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
