#!/usr/bin/env python3
"""PyTorch reference for the brittleness audit's speed: the same work as
`dermrobust audit brittleness` (original predictions once, then every transformed copy of the
test images, batched) written as a direct PyTorch loop.

It loads N HAM10000 images, resizes them to RES x RES, and for the original set plus the 17
transformations of dermrobust's default suite (rotations, zooms, brightness, green -10/255,
gamma, and the 6 combinations) runs a torchvision ResNet-18 (7 classes, eval mode, no_grad) in
batches of 256, timing transformations + forward passes together. Prints forward passes per
second. Set-up: see ../shared/bench/torch_resnet18.py (a venv with torch and torchvision).

    /tmp/torchenv/bin/python tools/bench/torch_audit_loop.py --images 300 --res 64
"""
import argparse
import glob
import json
import os
import time

import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.io import read_image


def rot(d):
    return lambda x: F.rotate(x, d, interpolation=F.InterpolationMode.BILINEAR)


def zoom(f):
    return lambda x: F.affine(x, angle=0.0, translate=[0, 0], scale=f, shear=[0.0], interpolation=F.InterpolationMode.BILINEAR)


def bright(f):
    return lambda x: F.adjust_brightness(x, f)


def green(x):
    y = x.clone()
    y[:, 1] = (y[:, 1] - 10 / 255).clamp(0, 1)
    return y


def gamma(g):
    return lambda x: F.adjust_gamma(x, g)


def seq(*fs):
    def f(x):
        for g in fs:
            x = g(x)
        return x
    return f


SUITE = [rot(10), rot(45), rot(90), zoom(0.9), zoom(1.1), zoom(1.2), bright(0.9), bright(1.1), bright(1.2), green, gamma(1.3),
         seq(rot(30), zoom(1.2)), seq(rot(60), bright(1.2)), seq(zoom(0.85), bright(0.85)), seq(rot(90), zoom(1.25), bright(1.15)),
         seq(rot(135), zoom(0.9), gamma(1.3)), seq(rot(180), zoom(1.3), green)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/ham10000/images"))
    a = p.parse_args()
    torch.manual_seed(0)
    files = sorted(glob.glob(os.path.join(a.data, "*.jpg")))[: a.images]
    imgs = torch.stack([F.resize(read_image(f).float() / 255, [a.res, a.res], antialias=True) for f in files])
    model = torchvision.models.resnet18(num_classes=7).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    passes = 0
    t = time.perf_counter()
    with torch.no_grad():
        for transform in [lambda x: x] + SUITE:
            for i in range(0, len(imgs), 256):
                x = transform(imgs[i:i + 256])
                torch.softmax(model((x - mean) / std), 1)
                passes += len(x)
    seconds = time.perf_counter() - t
    print(json.dumps({"images": len(imgs), "sets": len(SUITE), "forward_passes": passes, "seconds": round(seconds, 2),
                      "forward_passes_per_s": round(passes / seconds, 1), "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
