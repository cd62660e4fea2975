"""Derive the thresholds of ``tests/empirics/test_core_attacks.py::test_decoder_near_optimal_small``
from their spread over seeds: the same setting as the test's fixture (d = 8, linear channel σ = 0.5,
4000 auxiliary samples, 10 decoder epochs, 1000 test points), seeds 1..N (default 12).

Prints, per seed, decoder MSE / Bayes MSE (same test inputs) and optimization MSE / decoder MSE, then
mean, sd and extreme of each and the thresholds mean + 4 sd and mean - 4 sd used by the test.
Measured 2026-11-30 (seeds 1-12): decoder/Bayes mean 1.0279 sd 0.0129 max 1.0572 -> 1.080;
optimization/decoder mean 2.218 sd 0.190 min 1.931 -> 1.46.  About 4 minutes on one core.
Run from the repository root: ``python benchmarks/optimality_threshold.py [--seeds 12]``.
"""

from __future__ import annotations

import argparse
import statistics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=12)
    a = ap.parse_args()
    import torch

    from empirics.attacks.optimality import run_optimality
    torch.set_num_threads(1)
    rat, opt = [], []
    for seed in range(1, a.seeds + 1):
        recs = run_optimality(d=8, sigmas_linear=(0.5,), sigmas_nonlinear=(), attacks=("decoder", "optimization"),
                              n_aux=4000, n_test=1000, epochs=10, pool=20000, n_entropy=1000, seed=seed,
                              device="cpu", quick=True)
        d = [r for r in recs if r.attack == "decoder"][0]
        o = [r for r in recs if r.attack == "optimization"][0]
        rat.append(d.mse / d.bayes_mse)
        opt.append(o.mse / d.mse)
        print(f"seed {seed:2d}  decoder/bayes {rat[-1]:.4f}  optimization/decoder {opt[-1]:.3f}", flush=True)
    m, s = statistics.fmean(rat), statistics.stdev(rat)
    print(f"decoder/bayes: mean {m:.4f} sd {s:.4f} max {max(rat):.4f} -> threshold mean + 4 sd = {m + 4 * s:.3f}")
    m, s = statistics.fmean(opt), statistics.stdev(opt)
    print(f"optimization/decoder: mean {m:.3f} sd {s:.3f} min {min(opt):.3f} -> threshold mean - 4 sd = {m - 4 * s:.2f}")


if __name__ == "__main__":
    main()
