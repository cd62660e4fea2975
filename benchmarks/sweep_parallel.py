"""Wall time of a 16-cell digits sweep: the sequential loop vs the local executor with 2 workers.

Sequential = what every command did before sweeps: one process runs one cell after another
(:func:`empirics.experiments.runner.execute_all`), torch using all the physical cores
(:func:`empirics.threads.threads_for` (1)) — and, to separate the two effects, the same loop with
one torch thread.  Parallel = ``invlimits sweep --workers 2``'s executor
(:func:`empirics.sweep.executors.run_local`): two spawned worker processes, each with its share of
the cores (``threads_for(2)``).  Both start from empty record stores in a temporary folder, run the
same 16 configurations (digits, 4 noise levels × 4 seeds, training + decoder attack), and must
produce the same cells; the numbers may differ in the last bits where the thread counts differ
(with one thread each, the sequential loop and the workers give bit-identical results).

    python benchmarks/sweep_parallel.py [--epochs 4] [--attack-epochs 2] [--workers 2] [--sequential-threads default,1]

Timings on a machine shared with other work are inflated and noisy; the ratio is the result.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def grid(epochs: int, attack_epochs: int):
    from empirics.sweep.spec import expand, parse_spec
    spec = parse_spec({"sweep": {"experiment": "train", "name": "bench-16"},
                       "grid": {"sigma": [0.02, 0.05, 0.1, 0.2], "seed": [0, 1, 2, 3]},
                       "settings": {"dataset": "digits", "epochs": epochs, "lr": 0.003, "attacks": ["decoder"],
                                    "attack_epochs": attack_epochs, "eval_train": False}})
    return expand(spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--attack-epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sequential-threads", default="default,1", type=lambda v: v.split(","),
                    help="torch threads of the sequential loops to time: 'default' (all physical cores) and/or N")
    a = ap.parse_args(argv)

    from empirics.experiments import RunContext, execute_all
    from empirics.store import RecordStore
    from empirics.sweep.executors import Tally, run_local
    from empirics.sweep.worker import make_task
    from empirics.threads import available_cores, threads_for

    cells = grid(a.epochs, a.attack_epochs)
    seq_threads, par_threads = threads_for(1), threads_for(a.workers)
    load0 = os.getloadavg()
    times, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in dict.fromkeys(seq_threads if t == "default" else int(t) for t in a.sequential_threads):
            name = f"sequential loop (1 process, {threads} torch thread(s)" + \
                (": today's default)" if threads == seq_threads else ")")
            t0 = time.perf_counter()
            recs = execute_all([c.config for c in cells], RecordStore(Path(tmp) / f"seq{threads}" / "records"),
                               RunContext(device="cpu", threads=threads), desc="sequential")
            times[name], results[name] = time.perf_counter() - t0, recs
        par_out = Path(tmp) / "par"
        tally = Tally(len(cells), stream=open(os.devnull, "w"))
        t0 = time.perf_counter()
        run_local([make_task(c, par_out, threads=par_threads, device="cpu") for c in cells], workers=a.workers,
                  tally=tally)
        t_par = time.perf_counter() - t0
        par = RecordStore(par_out / "records").records([c.config for c in cells])
    assert all(r is not None for r in par) and len(par) == len(cells)
    print(f"{len(cells)} digits cells (train {a.epochs} epochs + decoder attack {a.attack_epochs} epochs), "
          f"{available_cores()} physical core(s) available; load average before {load0[0]:.1f}, after "
          f"{os.getloadavg()[0]:.1f} (other processes share the machine when these exceed the cores)")
    for name, t in times.items():
        same = sum(r.result == p.result for r, p in zip(results[name], par))
        print(f"{name}: {t:7.1f} s   ({t / t_par:.2f}x the parallel time; cells bit-identical to the parallel "
              f"run: {same} of {len(cells)})")
    print(f"local executor ({a.workers} workers x {par_threads} torch thread(s)): {t_par:7.1f} s")
    print(f"statuses: {sorted({p.status for p in par})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
