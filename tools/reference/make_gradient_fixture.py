#!/usr/bin/env python3
"""Make the PyTorch reference for dermrobust's gradient, saliency and Grad-CAM tests.

Loads the existing `tiny_resnet18.safetensors` (written by make_torchvision_fixture.py; this script
does not regenerate it) into the same `TinyResNet18` (torchvision layout, widths 8, 16, 32, 64,
3 classes), in eval mode, with ImageNet normalisation inside the graph: model((x - mean) / std)
where x holds raw pixels in [0, 1]. Writes `tiny_resnet18_gradients.json` with, as flat row-major
(NCHW) float lists:
- `mean`, `std`: the ImageNet statistics;
- `input` [2,3,64,64]: torch.manual_seed(3), torch.rand, the second image squared;
- `logits` [2,3];
- `target_classes` [2]: [2, 0];
- `input_gradient` [2,3,64,64]: d(sum_i logits[i, target_i]) / dx (raw pixels);
- `loss_input_gradient` [2,3,64,64]: d F.cross_entropy(logits, labels=[1, 2], reduction='sum') / dx;
- `layer4_activations` [2,64,2,2]: output of model.layer4;
- `layer4_gradients` [2,64,2,2]: d(sum_i logits[i, target_i]) / d layer4;
- `gradcam_weights` [2,64]: the spatial mean of layer4_gradients (Grad-CAM channel weights);
- `gradcam_layer4` [2,2,2]: ReLU(sum_k w_k A_k), before any scaling;
- `gradcam_upsampled` [2,64,64]: what pytorch-grad-cam's GradCAM returns (see `resize_note`);
- `torch_version`, `gradcam_source` (which code made gradcam_upsampled), `resize_note`.
Each array also has its shape under `<name>_shape`.

Run (outside the project's build; needs torch, torchvision, safetensors, numpy, and ideally
grad-cam (pytorch-grad-cam, which brings opencv); without it the map is computed by hand the same way):
    /tmp/torchenv/bin/python tools/reference/make_gradient_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torchvision_fixture import TinyResNet18  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
TARGETS = [2, 0]
LOSS_LABELS = [1, 2]

RESIZE_NOTE = (
    "pytorch-grad-cam (base_cam.compute_cam_per_layer + utils/image.scale_cam_image): "
    "cam = ReLU(sum_k w_k A_k) with w_k = spatial mean of d(logit_target)/dA_k; "
    "s = (cam - min(cam)) / (1e-7 + max(cam - min(cam))) per image; "
    "r = cv2.resize(float32 s, (64, 64)) with cv2's default INTER_LINEAR: bilinear, half-pixel "
    "centres (align_corners=False), source coordinate (dst + 0.5) * in/out - 0.5 clamped to the edge "
    "(same as torch F.interpolate(mode='bilinear', align_corners=False) when upsampling); "
    "then aggregate_multi_layers scales again: out = (r - min r) / (1e-7 + max(r - min r)) per image."
)


class Normalised(nn.Module):
    """Raw [0,1] pixels in; ImageNet normalisation inside the graph."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def load_model(fixtures):
    model = TinyResNet18()
    model.load_state_dict(load_file(f"{fixtures}/tiny_resnet18.safetensors"), strict=True)
    model.eval()
    return Normalised(model).eval()


def scale_cam(cam):
    """pytorch-grad-cam's scale_cam_image without the resize, per image."""
    cam = cam - cam.amin(dim=(-2, -1), keepdim=True)
    return cam / (1e-7 + cam.amax(dim=(-2, -1), keepdim=True))


def gradcam_by_hand(cam_low, size):
    s = scale_cam(cam_low.to(torch.float32))
    r = F.interpolate(s[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return scale_cam(r)


def gradcam_library(wrapped, x, targets):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=wrapped, target_layers=[wrapped.model.layer4]) as cam:
        out = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(t) for t in targets])
    wrapped.zero_grad(set_to_none=True)
    return torch.from_numpy(np.asarray(out, dtype=np.float32))


def main(out):
    wrapped = load_model(out)
    model = wrapped.model

    torch.manual_seed(3)
    x = torch.rand(2, 3, 64, 64)
    x[1] = x[1] ** 2
    targets = torch.tensor(TARGETS)
    labels = torch.tensor(LOSS_LABELS)

    captured = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: captured.__setitem__("layer4", o))

    # Target-logit gradients w.r.t. the raw input and layer4.
    xg = x.clone().requires_grad_(True)
    logits = wrapped(xg)
    act = captured["layer4"]
    score = logits.gather(1, targets[:, None]).sum()
    input_gradient, layer4_gradients = torch.autograd.grad(score, [xg, act])

    # Summed cross-entropy gradient w.r.t. the raw input.
    xl = x.clone().requires_grad_(True)
    loss = F.cross_entropy(wrapped(xl), labels, reduction="sum")
    (loss_input_gradient,) = torch.autograd.grad(loss, [xl])
    handle.remove()

    weights = layer4_gradients.mean(dim=(2, 3))
    cam_low = F.relu((weights[:, :, None, None] * act.detach()).sum(dim=1))
    by_hand = gradcam_by_hand(cam_low, 64)

    try:
        upsampled = gradcam_library(wrapped, x, TARGETS)
        source = "pytorch_grad_cam.GradCAM"
        try:
            import importlib.metadata as md
            source += " " + md.version("grad-cam") + ", opencv " + md.version("opencv-python-headless")
        except Exception:
            pass
        diff = (upsampled - by_hand).abs().max().item()
        print("grad-cam vs hand (torch bilinear, align_corners=False) max abs diff:", diff)
        assert diff < 1e-5, diff
    except ImportError as e:
        print("pytorch-grad-cam unavailable (", e, "): Grad-CAM computed by hand")
        upsampled = by_hand
        source = "by hand (torch F.interpolate bilinear, align_corners=False)"

    assert float(cam_low.amax()) > 0, "degenerate Grad-CAM map (all zero after ReLU)"

    arrays = {
        "input": x, "logits": logits.detach(), "input_gradient": input_gradient,
        "loss_input_gradient": loss_input_gradient, "layer4_activations": act.detach(),
        "layer4_gradients": layer4_gradients, "gradcam_weights": weights, "gradcam_layer4": cam_low,
        "gradcam_upsampled": upsampled,
    }
    doc = {"torch_version": torch.__version__, "mean": MEAN, "std": STD, "target_classes": TARGETS,
           "loss_labels": LOSS_LABELS, "gradcam_source": source, "resize_note": RESIZE_NOTE}
    for name, t in arrays.items():
        doc[f"{name}_shape"] = list(t.shape)
        doc[name] = t.detach().to(torch.float64).flatten().tolist()
    with open(f"{out}/tiny_resnet18_gradients.json", "w") as f:
        json.dump(doc, f)
    print("logits", logits.detach())
    print("gradcam_layer4", cam_low)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
