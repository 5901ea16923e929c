#!/usr/bin/env python3
"""Reference behaviour of scipy's differential evolution on standard test functions, for
dermrobust's optimiser (crates/dermrobust-core/src/optim/de.rs, test tests/differential_evolution.rs).

scipy.optimize.differential_evolution with the settings dermrobust implements: strategy
'best1bin', init 'latinhypercube', updating 'deferred' (the mode of workers > 1, which Du-Harpur
et al. used: each generation evaluated as one batch), polish=False, defaults otherwise (popsize 15,
mutation (0.5, 1), recombination 0.7, tol 0.01, maxiter 1000). For each function, 20 seeds: the
share of runs that reach the known optimum (|f - f*| < 1e-4) and the median number of evaluations.

Run (needs scipy):
    /tmp/torchenv/bin/python tools/reference/de_reference.py crates/dermrobust-core/tests/fixtures/de_reference.json
"""
import json
import sys

import numpy as np
import scipy
from scipy.optimize import differential_evolution


def sphere(x):
    return float(np.sum(x ** 2))


def rosenbrock(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rastrigin(x):
    return float(10 * len(x) + np.sum(x ** 2 - 10 * np.cos(2 * np.pi * x)))


def ackley(x):
    n = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x ** 2) / n)) - np.exp(np.sum(np.cos(2 * np.pi * x)) / n) + 20 + np.e)


PROBLEMS = [
    ("sphere", sphere, [(-5.12, 5.12)] * 5, 0.0),
    ("rosenbrock", rosenbrock, [(-2.0, 2.0)] * 2, 0.0),
    ("rosenbrock", rosenbrock, [(-2.0, 2.0)] * 4, 0.0),
    ("rastrigin", rastrigin, [(-5.12, 5.12)] * 2, 0.0),
    ("rastrigin", rastrigin, [(-5.12, 5.12)] * 5, 0.0),
    ("ackley", ackley, [(-32.768, 32.768)] * 2, 0.0),
]


def main(out):
    results = []
    for name, f, bounds, optimum in PROBLEMS:
        nfev, success = [], []
        for seed in range(20):
            r = differential_evolution(f, bounds, strategy="best1bin", init="latinhypercube", updating="deferred",
                                       polish=False, seed=seed, tol=0.01, maxiter=1000)
            nfev.append(int(r.nfev))
            success.append(bool(abs(r.fun - optimum) < 1e-4))
        results.append({"function": name, "dims": len(bounds), "bounds": bounds, "optimum": optimum,
                        "success_rate": float(np.mean(success)), "median_evaluations": float(np.median(nfev)),
                        "evaluations": nfev})
        print(name, len(bounds), np.mean(success), np.median(nfev))
    with open(out, "w") as fh:
        json.dump({"scipy_version": scipy.__version__, "settings": {"strategy": "best1bin", "init": "latinhypercube",
                   "updating": "deferred", "polish": False, "popsize": 15, "mutation": [0.5, 1.0],
                   "recombination": 0.7, "tol": 0.01, "maxiter": 1000, "seeds": 20}, "problems": results}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "de_reference.json")
