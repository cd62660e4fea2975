"""Scale benchmark: the faithful reduction network at n = 1000, B = 5 (MixCon appendix, Thm B.10).

With c = 100B² = 2,500 copies per variable the faithful h_φ has m₁ = m + 2cn ≈ 5.0 M hidden and
m₂ = m + cn ≈ 2.5 M output neurons.  This script builds it from a planted MAX-E3SAT(5) instance
(m = ⌊nB/3⌋ clauses), evaluates it, and reports wall time and peak memory (tracemalloc peak of
Python/numpy allocations, and the process's peak RSS from getrusage).  Target: < 10 s and < 2 GB.
It also checks the numbers it times: h(x) = z exactly at the planted assignment, residual =
#unsatisfied at a random corner, and faithful = compact residual at random interior points.

Usage::

    python benchmarks/reduction_scale.py [--n 1000] [--B 5] [--evals 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--B", type=int, default=5)
    p.add_argument("--evals", type=int, default=3, help="random interior points evaluated (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = p.parse_args(argv)

    import reduction as R

    rng = np.random.default_rng(a.seed)
    f, planted = R.planted_e3sat(a.n, a.n * a.B // 3, a.B, rng)
    X = rng.uniform(-1, 1, (a.evals, a.n))
    corner = rng.integers(0, 2, a.n).astype(bool)

    tracemalloc.start()
    t0 = time.perf_counter()
    net = R.build_network(f, B=a.B, form="faithful")
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    r_planted = net.residual(net.to_input(planted))
    h = net.forward(net.to_input(planted))
    exact = bool(np.array_equal(h, net.target))
    del h
    r_corner = net.residual(net.to_input(corner))
    r_int = np.array([net.residual(x) for x in X])
    t_eval = time.perf_counter() - t1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

    d, m1, m2 = net.shape
    compact = R.build_network(f, B=a.B, form="compact")
    rel = float(np.max(np.abs(r_int - compact.residual(X)) / compact.residual(X)))
    unsat = R.count_unsatisfied(f, corner)
    out = {
        "n": a.n, "B": a.B, "m": f.m, "copies": net.copies, "d": d, "m1": m1, "m2": m2,
        "nnz_W1": int(net.W1.nnz), "nnz_W2": int(net.W2.nnz),
        "build_s": t_build, "eval_s": t_eval, "evaluations": 3 + a.evals, "total_s": total,
        "tracemalloc_peak_bytes": peak, "peak_rss_bytes": rss,
        "planted_exact": exact, "planted_residual": r_planted,
        "corner_residual": r_corner, "corner_unsatisfied": unsat,
        "faithful_vs_compact_max_rel": rel,
    }
    ok = total < 10 and max(peak, rss) < 2 * 1024**3 and exact and r_corner == unsat and rel <= 1e-9
    out["passed"] = bool(ok)
    for k, v in out.items():
        print(f"{k:>28}: {v:,.4g}" if isinstance(v, float) else f"{k:>28}: {v:,}" if isinstance(v, int)
              and not isinstance(v, bool) else f"{k:>28}: {v}")
    print(f"\n{'PASS' if ok else 'FAIL'}: faithful n={a.n}, B={a.B} ({m2:,} outputs) built+evaluated in "
          f"{total:.2f} s; peak traced {peak / 2**20:.0f} MiB, peak RSS {rss / 2**20:.0f} MiB "
          f"(targets < 10 s, < 2 GB)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
