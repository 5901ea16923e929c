#!/usr/bin/env python3
"""Make the pytorch-grad-cam reference for dermrobust's explanation methods (tests/explain_reference.rs).

Loads `tiny_resnet18.safetensors` into the same TinyResNet18 (torchvision layout, widths 8-64,
3 classes) with ImageNet normalisation inside the graph (see make_gradient_fixture.py), in eval mode,
and the same two inputs (torch.manual_seed(3), torch.rand(2, 3, 64, 64), the second squared), targets
[2, 0]. Writes `tiny_resnet18_cams.json` with, as flat row-major float lists (shape under `<name>_shape`):
- `<method>_<layer>` [2, 64, 64] for method in gradcam, gradcam++, xgradcam, hirescam, layercam and
  layer in layer3, layer4: what pytorch-grad-cam's class returns (ReLU, min-max scaling, cv2 bilinear
  resize, scaling again) for `ClassifierOutputTarget(target)`;
- `guided_backprop` [2, 3, 64, 64]: GuidedBackpropReLUModel(model)(x[i:i+1], target_category=t_i),
  per image (the class handles one image at a time), returned HWC and stored here as CHW;
- `versions`.

Run: /tmp/torchenv/bin/python tools/reference/make_cam_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gradient_fixture import TARGETS, load_model  # noqa: E402

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, GuidedBackpropReLUModel  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM, "layercam": LayerCAM}


def main(out):
    wrapped = load_model(out)
    torch.manual_seed(3)
    x = torch.rand(2, 3, 64, 64)
    x[1] = x[1] ** 2
    doc = {}
    for layer in ["layer3", "layer4"]:
        for name, cls in METHODS.items():
            with cls(model=wrapped, target_layers=[getattr(wrapped.model, layer)]) as cam:
                maps = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(t) for t in TARGETS])
            wrapped.zero_grad(set_to_none=True)
            maps = np.asarray(maps, dtype=np.float32)
            assert maps.max() > 0.5, (name, layer, "degenerate map")
            doc[f"{name}_{layer}"] = maps.astype(np.float64).flatten().tolist()
            doc[f"{name}_{layer}_shape"] = list(maps.shape)
    gb = GuidedBackpropReLUModel(model=wrapped, device="cpu")
    per_image = []
    for i, t in enumerate(TARGETS):
        g = gb(x[i:i + 1].clone(), target_category=t)  # HWC
        per_image.append(np.transpose(g, (2, 0, 1)))
    # GuidedBackpropReLUModel replaced the ReLUs back with fresh ones; the model is unchanged.
    gb_all = np.stack(per_image).astype(np.float32)
    assert np.abs(gb_all).max() > 0
    doc["guided_backprop"] = gb_all.astype(np.float64).flatten().tolist()
    doc["guided_backprop_shape"] = list(gb_all.shape)
    import importlib.metadata as md
    doc["versions"] = {"torch": torch.__version__, "grad-cam": md.version("grad-cam")}
    doc["targets"] = TARGETS
    with open(f"{out}/tiny_resnet18_cams.json", "w") as f:
        json.dump(doc, f)
    print("wrote", f"{out}/tiny_resnet18_cams.json")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
