#!/usr/bin/env python3
"""Make the PyTorch reference for dermrobust's loss tests: `loss_reference.json`.

For logits = torch.manual_seed(5); torch.randn(6, 4) * 2 and labels [0, 1, 2, 3, 1, 0], with
class weights w = [1.0, 2.0, 0.5, 3.0]:
- `cross_entropy`: F.cross_entropy, mean reduction;
- `cross_entropy_weighted`: weight=w (PyTorch's weighted mean: sum_i w_{y_i} l_i / sum_i w_{y_i});
- `cross_entropy_smoothed`: label_smoothing=0.1;
- `cross_entropy_weighted_smoothed`: both (PyTorch: the smoothing term is weighted by each
  class's own weight, sum_c w_c log p_c, and the whole divided by sum_i w_{y_i});
- `focal_gamma2`: mean_i of -(1 - p_t)^2 log p_t (no alpha);
- `focal_gamma2_weighted`: mean_i of -w_{y_i} (1 - p_t)^2 log p_t (alpha = w, plain mean over the batch);
- `cross_entropy_grad` [6,4]: d cross_entropy / d logits.
Plus `logits` [6,4] (flat, row-major, with `logits_shape`), `labels`, `weights`, `label_smoothing`,
`torch_version`.

Run (outside the project's build; needs torch):
    /tmp/torchenv/bin/python tools/reference/make_loss_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import sys

import torch
import torch.nn.functional as F

LABELS = [0, 1, 2, 3, 1, 0]
WEIGHTS = [1.0, 2.0, 0.5, 3.0]
SMOOTHING = 0.1


def main(out):
    torch.manual_seed(5)
    logits = torch.randn(6, 4) * 2
    labels = torch.tensor(LABELS)
    weights = torch.tensor(WEIGHTS)

    z = logits.clone().requires_grad_(True)
    ce = F.cross_entropy(z, labels)
    (ce_grad,) = torch.autograd.grad(ce, [z])

    log_pt = F.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]
    pt = log_pt.exp()
    focal = -(1 - pt) ** 2 * log_pt
    doc = {
        "torch_version": torch.__version__,
        "logits_shape": list(logits.shape),
        "logits": logits.flatten().tolist(),
        "labels": LABELS,
        "weights": WEIGHTS,
        "label_smoothing": SMOOTHING,
        "cross_entropy": ce.item(),
        "cross_entropy_weighted": F.cross_entropy(logits, labels, weight=weights).item(),
        "cross_entropy_smoothed": F.cross_entropy(logits, labels, label_smoothing=SMOOTHING).item(),
        "cross_entropy_weighted_smoothed":
            F.cross_entropy(logits, labels, weight=weights, label_smoothing=SMOOTHING).item(),
        "focal_gamma2": focal.mean().item(),
        "focal_gamma2_weighted": (weights[labels] * focal).mean().item(),
        "cross_entropy_grad_shape": list(ce_grad.shape),
        "cross_entropy_grad": ce_grad.flatten().tolist(),
    }
    with open(f"{out}/loss_reference.json", "w") as f:
        json.dump(doc, f, indent=1)
    print({k: v for k, v in doc.items() if not isinstance(v, list)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
