"""Run a grid of experiments from a TOML spec on local processes, a Ray cluster or SLURM.

``invlimits sweep SPEC.toml --out DIR`` expands the spec (:mod:`empirics.sweep.spec`) into cells —
one configuration each, whose key decides whether it is done — runs the cells without a final
record on the chosen executor (:mod:`empirics.sweep.executors`; each worker writes its cell's
record to ``DIR/records``), then aggregates whatever records exist into the experiment's tables
and figures (:mod:`empirics.sweep.collect`).  Rerunning the same command runs exactly the missing
cells (and retries ``error`` ones).  ``--executor slurm`` submits a job array and returns at once;
``--status`` and ``--collect`` read ``DIR`` later.  ``--dry-run`` lists the cells, their resources and
an estimate of device-hours from timed training steps on this machine.  A cell that raises is
recorded as ``error`` with its message and the sweep goes on; the exit status is 1 when any cell
ended in error.  A spec whose grid has more than ``--max-cells`` cells (default 100,000) is
refused with its count before any cell is built; a dry run streams the cells (its table shows the
first :data:`DRY_RUN_ROWS`).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .. import registry
from ..results import Section
from ..store import RecordStore
from ..sweep import executors as E
from ..sweep.collect import collect_sections, status_rows
from ..progress import as_progress
from ..sweep.estimate import HoursEstimator
from ..sweep.spec import MAX_CELLS, check_size, datasets, expand, iter_cells, load_spec
from ..sweep.worker import gpu_groups, make_task
from ..threads import available_cores, threads_for

__all__ = ["add_arguments", "run"]


#: the examples at the end of --help
EXAMPLES = """examples:
  invlimits sweep sweeps/digits_tiny.toml --out runs/sweep-tiny --workers 2
  invlimits sweep sweeps/digits_fig3.toml --out runs/sweep-fig3 --dry-run       # cells, resources, estimate
  invlimits sweep sweeps/paper_table1.toml --data-root DATA --out runs/t1 --executor slurm --partition gpu
  invlimits sweep sweeps/paper_table1.toml --data-root DATA --out runs/t1 --status   # later: --collect"""

EXECUTORS = ("local", "ray", "slurm")
#: cells listed in a dry run's table (every cell is counted and estimated; the rest are summarised)
DRY_RUN_ROWS = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (argparse)."""
    p.add_argument("spec", type=Path, help="sweep spec (TOML): [sweep] experiment, [grid], [settings], [resources]")
    p.add_argument("--executor", default="local", help="local (process pool), ray or slurm (submitit job array)")
    p.add_argument("--workers", type=int, default=None,
                   help="local: worker processes (default: physical cores / resources.num_cpus); ray without "
                        "--address: size of the local Ray cluster in cells")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per cell (default: local: the cores divided among the workers; ray / slurm: "
                        "resources.num_cpus)")
    p.add_argument("--address", default=None, help="ray: auto or HOST:PORT of a running cluster (default: start a "
                                                   "local one)")
    p.add_argument("--partition", default=None, help="slurm: partition")
    p.add_argument("--gpus-per-task", type=int, default=None,
                   help="slurm: GPUs per array task (default: resources.num_gpus rounded up)")
    p.add_argument("--time", default="240", help="slurm: time limit per task, minutes or [D-]HH:MM[:SS]")
    p.add_argument("--array-parallelism", type=int, default=64, help="slurm: array tasks running at once")
    p.add_argument("--data-root", type=Path, default=None, help="folder with local CIFAR-10 / MNIST files")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished cell's training checkpoint in DIR/checkpoints")
    p.add_argument("--max-cells", type=int, default=MAX_CELLS,
                   help="refuse a spec with more cells than this (counted from the grid's axes before any is built)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="report the cells' records and jobs; run nothing")
    mode.add_argument("--collect", action="store_true", help="aggregate the records that exist; run nothing")
    mode.add_argument("--dry-run", action="store_true",
                      help="list the cells, their resources and an estimate of device-hours; run nothing")


def _check_args(args) -> str:
    if getattr(args, "quick", False):
        raise ValueError("--quick: not used by sweep (its size is the spec's grid and settings)")
    if args.seed != 0:
        raise ValueError("--seed: a sweep's seeds are in its spec ([grid] seed = [...])")
    ex = args.executor
    if ex not in EXECUTORS + ("slurm-local",):
        raise ValueError(f"--executor: expected one of {list(EXECUTORS)}, got {ex!r}")
    for nm in ("workers", "threads", "gpus_per_task", "array_parallelism", "max_cells"):
        v = getattr(args, nm)
        if v is not None and v < (0 if nm == "gpus_per_task" else 1):
            raise ValueError(f"--{nm.replace('_', '-')}: expected a positive integer, got {v}")
    if args.address is not None and ex != "ray":
        raise ValueError("--address: only with --executor ray")
    return ex


def _fingerprints(spec, args) -> dict:
    """Content hashes of the local-file datasets the spec uses (None values when absent in a dry run)."""
    fps = {}
    for name in datasets(spec):
        if registry.spec(name).needs_root:
            if args.data_root is None and args.dry_run:
                continue
            fps[name] = registry.fingerprint(registry.load_dataset(name, root=args.data_root))
    return fps


def _counts(rows) -> dict:
    return {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "error", "missing")}


def _summary(spec, cells, records, title: str, key: str = "sweep") -> Section:
    rows = status_rows(cells, records)
    c = _counts(rows)
    sec = Section(key, title, records=[r for r in records if r is not None])
    sec.headline = (f"{len(cells)} cells: {c['ok']} ok, {c['failed']} failed (near chance or diverged: valid, excluded "
                    f"from tables), {c['error']} error, {c['missing']} without a record.")
    sec.table_notes["cells"] = ("One row per cell of the spec: its key (= its record DIR/records/<key>.json), status "
                                "(ok; failed = a model near chance or diverged; error = the run raised, retried by a "
                                "rerun; missing = no record yet), reason, run time in seconds and device.")
    sec.tables["cells"] = rows
    sec.data["counts"] = c
    return sec


def _dry_run(spec, n: int, store, fps, args) -> tuple[Section, Section, list]:
    """Stream the cells: each one's record (if any) and estimate, the first DRY_RUN_ROWS listed; the
    records found (for the collector).  Memory: the rows shown and the records found, not the cells."""
    need_data = [d for d in datasets(spec) if registry.spec(d).needs_root and args.data_root is None]
    est = HoursEstimator(device=args.device, data_root=args.data_root)
    prog = as_progress(getattr(args, "progress", False))
    prog.step(f"dry run of {spec.name}: {n:,} cells (records read, one training step timed per model) ...")
    rows, found = [], []
    counts = {"ok": 0, "failed": 0, "error": 0, "missing": 0}
    total = todo = 0.0
    timed = False
    count = 0
    for i, c in enumerate(prog.bar(iter_cells(spec, fingerprints=fps, max_cells=args.max_cells), total=n,
                                   desc="cells", unit="cell")):
        count += 1
        r = store.get(c.key)
        counts[r.status if r else "missing"] += 1
        if r is not None:
            found.append(r)
        h = est.hours(c)
        if h is not None:
            timed = True
            total += h
            todo += h if r is None or r.status == "error" else 0.0
        if len(rows) < DRY_RUN_ROWS:
            t = getattr(c.config, "train", None)
            key = "(needs --data-root)" if t is not None and t.dataset in need_data else c.key
            row = {"#": i + 1, "key": key, "cell": c.label(), "done": (r.status if r else "no"),
                   "num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus}
            if t is not None:
                row.update(epochs=t.epochs, est_hours=h)
            rows.append(row)
    done = counts["ok"] + counts["failed"]
    sec = Section("dry-run", f"Dry run of {spec.name}: {count} cells ({spec.experiment})")
    basis = est.basis() if timed else None
    if timed:
        sec.headline = (f"{count} cells, {done} done; about {todo:.3g} {basis['device']}-hours of training left (an "
                        f"estimate from timed steps on this machine, training only).")
        sec.description = (
            f"Each cell asks for num_cpus = {spec.num_cpus:g}, num_gpus = {spec.num_gpus:g} (Ray task / SLURM array "
            f"task). est_hours = median time of one training step of the cell's model architecture (random inputs of "
            f"the dataset's shape, cross-entropy, backward, optimiser step) on this machine's {basis['device']} × "
            f"ceil(n_train / batch size) × epochs: training only — attacks, CEM's mixture fits and extra loss, data "
            f"loading and evaluation are not counted. An estimate from this machine, not a measurement of the sweep."
            + (f" Keys of cells on {', '.join(need_data)} include the data's content hash: pass --data-root to see "
               f"them (shape and size are the standard split's)." if need_data else ""))
        sec.tables["timed training steps"] = [{"model": k, "seconds_per_step": v}
                                              for k, v in basis["step_seconds"].items()]
        sec.data["estimate"] = {**basis, "hours_total": total, "hours_left": todo}
    else:
        sec.headline = f"{count} cells, {done} done; no time estimate for this experiment (nothing is trained)."
        sec.description = (f"Each cell asks for num_cpus = {spec.num_cpus:g}, num_gpus = {spec.num_gpus:g} (Ray task / "
                           f"SLURM array task).")
        sec.data["estimate"] = None
    sec.table_notes["cells"] = ("The cells in run order; done = the status of an existing record (no = none)."
                                + (f" The first {DRY_RUN_ROWS} of {count} are listed." if count > DRY_RUN_ROWS else ""))
    sec.tables["cells"] = rows
    summ = Section("sweep", f"Sweep {spec.name}: {spec.experiment}, {count} cells", records=found)
    summ.headline = (f"{count} cells: {counts['ok']} ok, {counts['failed']} failed (near chance or diverged: valid, "
                     f"excluded from tables), {counts['error']} error, {counts['missing']} without a record.")
    summ.data["counts"] = counts
    return sec, summ, found


def _status(spec, cells, records, args) -> Section:
    sec = _summary(spec, cells, records, f"Status of {spec.name} ({len(cells)} cells)", key="status")
    state = E.slurm_jobs(args.out)
    if state:
        js = E.job_states(state, [c.key for c, r in zip(cells, records) if r is None or r.status == "error"])
        for row in sec.tables["cells"]:
            row["job"] = state["jobs"].get(row["key"], "")
            if row["key"] in js:
                row["job_state"] = js[row["key"]]
        sec.description = (f"{state['cluster']} jobs recorded in {Path(args.out) / 'sweep' / 'slurm.json'} "
                           f"({len(state.get('submissions', []))} submission(s)); job_state is shown for cells without "
                           f"a final record.")
    return sec


def _cuda_devices(device) -> int:
    """CUDA devices local workers can share out (0 unless --device is auto or cuda)."""
    if not (str(device) == "auto" or str(device).startswith("cuda")):
        return 0
    import torch  # deferred: torch (the parser of every command imports this module)
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _execute(spec, cells, records, args, ex: str) -> tuple[Section, dict]:
    out = Path(args.out)
    todo = [c for c, r in zip(cells, records) if r is None or r.status == "error"]
    cpus = max(1, math.ceil(spec.num_cpus))
    gpus = None
    if ex == "local":
        n_dev = _cuda_devices(args.device) if spec.num_gpus > 0 else 0
        per = max(1, math.ceil(spec.num_gpus))
        workers = args.workers or (max(1, n_dev // per) if n_dev else max(1, available_cores() // cpus))
        threads = args.threads or threads_for(workers)
        how = f"local: {workers} worker processes × {threads} torch thread(s)"
        if n_dev:
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            gpus = gpu_groups(visible[:n_dev] if len(visible) >= n_dev else [str(i) for i in range(n_dev)], per,
                              workers)
            how += f", GPUs per worker: {', '.join(gpus)}"
    else:
        workers, threads = args.workers, args.threads or max(1, math.floor(spec.num_cpus))
        how = f"{ex}: one task per cell, num_cpus = {spec.num_cpus:g}, num_gpus = {spec.num_gpus:g}, {threads} thread(s)"
    tasks = [make_task(c, out, threads=threads, device=args.device, data_root=args.data_root,
                       keep_checkpoints=args.keep_checkpoints) for c in todo]
    info = {"executor": ex, "threads_per_cell": threads, "cells": len(cells), "to_run": len(tasks)}
    if ex.startswith("slurm"):
        gpus = args.gpus_per_task if args.gpus_per_task is not None else math.ceil(spec.num_gpus)
        sub = E.submit_slurm(tasks, out=out, cluster="local" if ex == "slurm-local" else "slurm", name=spec.name,
                             num_cpus=spec.num_cpus, gpus=gpus, partition=args.partition,
                             time_min=E.parse_minutes(args.time), array_parallelism=args.array_parallelism)
        info.update(submission=sub)
        sec = Section("submit", f"Submitted {spec.name} to {'SLURM' if ex == 'slurm' else 'submitit (local)'}")
        sec.headline = (f"{sub['cells']} of {len(cells)} cells submitted as job array {', '.join(sub['job_ids']) or '-'}"
                        f" ({len(cells) - len(tasks)} already done, {len(sub['skipped_active'])} still queued or running"
                        f"); follow with `invlimits sweep {args.spec} --out {out} --status`, then --collect.")
        sec.description = f"{how}; gpus per task {gpus}; time limit {E.parse_minutes(args.time)} min."
        return sec, info
    tally = E.Tally(len(tasks), lines=as_progress(getattr(args, "progress", False)).lines)
    try:
        if ex == "local":
            E.run_local(tasks, workers=workers, tally=tally, gpus=gpus)
        else:
            info["ray"] = E.run_ray(tasks, address=args.address, num_cpus=spec.num_cpus, num_gpus=spec.num_gpus,
                                    workers=workers, records=out / "records", tally=tally)
    except KeyboardInterrupt:
        print(f"\nsweep interrupted: {len(tally.results)} of {len(tasks)} cells finished in this run (records kept); "
              f"cells in flight are lost — the same command runs the remaining ones", flush=True)
        raise
    info.update(tally.counts())
    sec = Section("run", f"Ran {spec.name} ({how})")
    c = tally.counts()
    sec.headline = (f"this run: {c['ran']} cells ran ({c['ok']} ok, {c['failed']} failed, {c['error']} error), "
                    f"{len(cells) - len(tasks)} were already done, {c['not_run']} did not finish.")
    sec.description = how
    return sec, info


def run(args):
    """Run the subcommand: its sections (and the top-level keys it adds to ``results.json``)."""
    ex = _check_args(args)
    spec = load_spec(args.spec)
    n = check_size(spec, args.max_cells)  # counted from the axes: a huge grid is refused before any cell is built
    running = not (args.status or args.collect or args.dry_run)
    if running and ex == "ray":
        E.check_ray(args.address)
    if running and ex.startswith("slurm"):
        E.check_slurm("local" if ex == "slurm-local" else "slurm")
    fps = _fingerprints(spec, args)
    store = RecordStore(Path(args.out) / "records")
    extra = {"sweep": {"spec": str(args.spec), "name": spec.name, "experiment": spec.experiment,
                       "resources": {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus}, "cells": n}}
    if args.dry_run:
        sec, summ, found = _dry_run(spec, n, store, fps, args)
        extra["sweep"].update(cells=sum(summ.data["counts"].values()), estimate=sec.data["estimate"],
                              counts=summ.data["counts"])
        return [sec, summ] + collect_sections(spec, [], found, args.out), extra
    cells = expand(spec, fingerprints=fps, max_cells=args.max_cells)
    extra["sweep"]["cells"] = len(cells)
    records = store.records([c.config for c in cells])
    first = []
    if args.status:
        first = [_status(spec, cells, records, args)]
    elif running:
        (Path(args.out) / "sweep").mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "sweep" / "spec.toml").write_text(Path(args.spec).read_text())
        sec, info = _execute(spec, cells, records, args, ex)
        extra["sweep"]["run"] = info
        first = [sec]
        records = store.records([c.config for c in cells])
    summ = _summary(spec, cells, records, f"Sweep {spec.name}: {spec.experiment}, {len(cells)} cells")
    if (running and not ex.startswith("slurm")) or args.collect:
        n_err = summ.data["counts"]["error"]
        summ.add("no cell ended in error", f"{len(cells)} cells", n_err, 0, -n_err, n_err == 0,
                 note="errors are recorded with their message (table 'cells'); a rerun retries them",
                 tolerance="0 cells")
    extra["sweep"]["counts"] = summ.data["counts"]
    if args.status:
        summ.tables.pop("cells")  # the status table lists them
    return first + [summ] + collect_sections(spec, cells, records, args.out), extra
