#!/usr/bin/env python3
"""PyTorch side of `cargo run --release --example conv_profile`: ResNet-18's convolutions at 64 px,
batch 32: forward, weight gradient and input gradient of each distinct shape (medians of 7, ms).

    /tmp/torchenv/bin/python tools/bench/torch_conv_profile.py [BATCH]
"""
import sys
import time

import torch

LAYERS = [("stem 7x7/2 3-64 @64", 1, 3, 64, 64, 7, 2, 3), ("3x3 64-64 @16", 4, 64, 64, 16, 3, 1, 1),
          ("3x3/2 64-128 @16", 1, 64, 128, 16, 3, 2, 1), ("3x3 128-128 @8", 3, 128, 128, 8, 3, 1, 1),
          ("3x3/2 128-256 @8", 1, 128, 256, 8, 3, 2, 1), ("3x3 256-256 @4", 3, 256, 256, 4, 3, 1, 1),
          ("3x3/2 256-512 @4", 1, 256, 512, 4, 3, 2, 1), ("3x3 512-512 @2", 3, 512, 512, 2, 3, 1, 1),
          ("1x1/2 64-128 @16", 1, 64, 128, 16, 1, 2, 0), ("1x1/2 128-256 @8", 1, 128, 256, 8, 1, 2, 0),
          ("1x1/2 256-512 @4", 1, 256, 512, 4, 1, 2, 0)]


def median_ms(f):
    for _ in range(2):
        f()
    t = []
    for _ in range(7):
        s = time.perf_counter()
        f()
        t.append((time.perf_counter() - s) * 1e3)
    return sorted(t)[3]


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    torch.set_num_threads(torch.get_num_threads())
    tot = [0.0, 0.0, 0.0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("layer | count | forward ms | weight grad ms | input grad ms")
    for name, count, cin, cout, side, k, s, p in LAYERS:
        x = torch.randn(batch, cin, side, side)
        w = torch.randn(cout, cin, k, k)
        y = torch.nn.functional.conv2d(x, w, None, s, p)
        dy = torch.randn_like(y)
        with torch.no_grad():
            fwd = median_ms(lambda: torch.nn.functional.conv2d(x, w, None, s, p))
            wg = median_ms(lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [False, True, False]))
            xg = median_ms(lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, False, False]))
        print(f"{name} | {count} | {fwd:.2f} | {wg:.2f} | {xg:.2f}")
        for i, v in enumerate((fwd, wg, xg)):
            tot[i] += v * count
    print(f"network total (ms per batch of {batch}) | | {tot[0]:.1f} | {tot[1]:.1f} | {tot[2]:.1f}")


if __name__ == "__main__":
    main()
