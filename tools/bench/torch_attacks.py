#!/usr/bin/env python3
"""PyTorch reference for the adversarial audit's speed: the same attacks as `dermrobust audit
adversarial` written as a direct PyTorch loop on the same machine, with the libraries users know.

A torchvision ResNet-18 (2 classes, eval mode) on N random 64x64 images:
- FGSM (torchattacks.FGSM) and PGD (torchattacks.PGD, 10 steps, random start), batches of 32;
- the colour-balance attack by scipy's differential_evolution with Du-Harpur's settings
  (popsize 20, maxiter 21, tol 1e-5, best1bin, Latin hypercube, deferred updating: one batched
  forward pass per generation via `vectorized=True`), no early stop, per image.
Prints images/s (gradient attacks) and queries/s (forward passes/s of the black-box search).
Set-up: ../shared/bench/torch_resnet18.py's venv plus `pip install torchattacks scipy`.

    /tmp/torchenv/bin/python tools/bench/torch_attacks.py --images 64 --res 64 --json
"""
import argparse
import json
import time

import numpy as np
import torch
import torchattacks
import torchvision
from scipy.optimize import differential_evolution


class Normalised(torch.nn.Module):
    """Raw [0, 1] input, normalisation inside (as dermrobust's models)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--de-images", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    model = Normalised(torchvision.models.resnet18(num_classes=2)).eval()
    x = torch.rand(a.images, 3, a.res, a.res)
    with torch.no_grad():
        y = model(x).argmax(1)
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "images": a.images, "res": a.res}

    def timed(attack):
        start = time.perf_counter()
        for i in range(0, a.images, 32):
            attack(x[i:i + 32], y[i:i + 32])
        return a.images / (time.perf_counter() - start)

    timed(torchattacks.FGSM(model, eps=0.008))  # warm-up
    out["fgsm_images_per_s"] = timed(torchattacks.FGSM(model, eps=0.008))
    out["pgd10_images_per_s"] = timed(torchattacks.PGD(model, eps=0.008, alpha=0.002, steps=10, random_start=True))

    queries = 0
    start = time.perf_counter()
    for i in range(a.de_images):
        img = x[i:i + 1]
        label = int(y[i])

        def objective(gains):  # gains: (3, S) when vectorized
            nonlocal queries
            g = torch.tensor(gains.T, dtype=torch.float32).view(-1, 3, 1, 1)
            batch = (img * g).clamp(0, 1)
            queries += batch.shape[0]
            with torch.no_grad():
                prob = torch.softmax(model(batch), 1)[:, label]
            return prob.numpy().astype(np.float64)

        differential_evolution(objective, [(0.9, 1.1)] * 3, popsize=20, maxiter=21, tol=1e-5, polish=False,
                               updating="deferred", vectorized=True, seed=i)
    out["de_colour_queries_per_s"] = queries / (time.perf_counter() - start)
    print(json.dumps(out) if a.json else out)


if __name__ == "__main__":
    main()
