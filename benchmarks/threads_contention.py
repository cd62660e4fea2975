"""Training speed under CPU contention: torch's default intra-op threads vs the package's setting.

A second CPU-bound process (a pure-Python busy loop per ``--hogs``) runs beside a training epoch
of the digits preset; epochs/s are measured with (a) torch's default thread count (every logical
CPU of the machine) and (b) ``empirics.threads.threads_for(share)`` — the physical cores this
process may use, divided by the workers sharing them (``--share``, as a sweep sets it).
Interleaved repetitions, median reported.  Run from the repository root:
``python benchmarks/threads_contention.py [--hogs 1] [--share 1] [--reps 5]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time


def _hog(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hogs", type=int, default=1, help="competing CPU-bound processes")
    ap.add_argument("--share", type=int, default=1, help="workers sharing the cores (sweep workers)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()

    import torch

    from empirics.data import digits
    from empirics.defenses import make_defense
    from empirics.models import make_model
    from empirics.threads import available_cores, threads_for
    from empirics.training import train

    default = torch.get_num_threads()
    ours = threads_for(a.share)
    data = digits()
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    hogs = [ctx.Process(target=_hog, args=(stop,), daemon=True) for _ in range(a.hogs)]
    for h in hogs:
        h.start()
    time.sleep(1.0)
    rates = {default: [], ours: []} if default != ours else {default: []}
    try:
        for _ in range(a.reps):
            for n in rates:
                torch.set_num_threads(n)
                m = make_model("digits", num_classes=10, seed=0)
                t0 = time.perf_counter()
                train(m, data.train, epochs=a.epochs, batch_size=64, defenses=[make_defense("noise", sigma=0.1)],
                      device="cpu", progress=False)
                rates[n].append(a.epochs / (time.perf_counter() - t0))
    finally:
        stop.set()
        for h in hogs:
            h.join(timeout=5)
    print(f"machine: {available_cores()} physical core(s) available to this process; torch default threads "
          f"{default}; package setting threads_for(share={a.share}) = {ours}; {a.hogs} competing process(es)")
    for n, r in rates.items():
        label = ("default = package" if n == default == ours else "torch default" if n == default else "package")
        print(f"  {n} thread(s) ({label}): {statistics.median(r):.2f} epochs/s (median of {len(r)}; "
              f"range {min(r):.2f}-{max(r):.2f})")


if __name__ == "__main__":
    main()
