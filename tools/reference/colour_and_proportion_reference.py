#!/usr/bin/env python3
"""Reference values for two small numeric pieces of the adversarial audit:

- CIEDE2000 colour differences and sRGB -> CIELAB (D65) conversion, from scikit-image
  (`skimage.color.rgb2lab`, `skimage.color.deltaE_ciede2000`), for random colour pairs and for
  Sharma et al.'s (2005) published test pairs;
- Wilson score intervals of a proportion, from statsmodels (`proportion_confint(method='wilson')`).

Run (needs scikit-image, statsmodels):
    /tmp/torchenv/bin/python tools/reference/colour_and_proportion_reference.py crates/dermrobust-core/tests/fixtures/colour_and_proportion_reference.json
"""
import json
import sys

import numpy as np
import skimage
import statsmodels
from skimage.color import deltaE_ciede2000, rgb2lab
from statsmodels.stats.proportion import proportion_confint

# Sharma, Wu, Dalal (2005), Table 1, pairs 1-4, 17, 25 (L, a, b and the published dE00).
SHARMA = [
    ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
    ([50.0, 3.1571, -77.2803], [50.0, 0.0, -82.7485], 2.8615),
    ([50.0, 2.8361, -74.0200], [50.0, 0.0, -82.7485], 3.4412),
    ([50.0, -1.3802, -84.2814], [50.0, 0.0, -82.7485], 1.0000),
    ([50.0, 2.5, 0.0], [56.0, -27.0, -3.0], 31.9030),
    ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
]


def main(out):
    rng = np.random.default_rng(0)
    rgb1 = rng.uniform(0, 1, size=(40, 3))
    rgb2 = np.clip(rgb1 + rng.normal(0, 0.05, size=(40, 3)), 0, 1)
    rgb2[:10] = rng.uniform(0, 1, size=(10, 3))  # some large differences too
    lab1 = rgb2lab(rgb1[None])[0]
    lab2 = rgb2lab(rgb2[None])[0]
    de = deltaE_ciede2000(lab1, lab2)
    sharma = [{"lab1": a, "lab2": b, "published": d, "skimage": float(deltaE_ciede2000(np.array(a), np.array(b)))} for a, b, d in SHARMA]
    props = []
    for k, n in [(0, 10), (1, 10), (5, 10), (10, 10), (120, 782), (80, 782), (3, 50), (47, 50)]:
        for level in [0.95, 0.9, 0.99]:
            lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
            props.append({"successes": k, "n": n, "level": level, "low": float(lo), "high": float(hi)})
    with open(out, "w") as fh:
        json.dump({"skimage_version": skimage.__version__, "statsmodels_version": statsmodels.__version__,
                   "rgb1": rgb1.tolist(), "rgb2": rgb2.tolist(), "lab1": lab1.tolist(), "lab2": lab2.tolist(),
                   "delta_e": de.tolist(), "sharma": sharma, "wilson": props}, fh, indent=1)
    for s in sharma:
        print(s["published"], s["skimage"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "colour_and_proportion_reference.json")
