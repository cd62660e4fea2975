"""Executors: where a sweep's cells run — a local process pool, a Ray cluster, or SLURM via submitit.

All three take the same plain-data tasks (:func:`empirics.sweep.worker.make_task`) and run the same
function in the worker (:func:`empirics.sweep.worker.run_cell`, which calls
:func:`empirics.experiments.runner.execute`); the worker writes each cell's record.  What differs is
only who starts the workers:

* ``local`` — a :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``) of ``workers`` processes;
  Ctrl-C stops the pool (cells in flight are lost, finished ones kept); workers die with the driver.
* ``ray`` — :func:`ray.init` joins the cluster at ``address`` (``auto`` or ``HOST:PORT``; checked with
  a 3 s TCP connect first, so an unreachable address fails before any cell runs) or starts a local
  one; one task per cell with the spec's ``num_cpus`` / ``num_gpus``, so GPU cells land on GPU nodes.
  A worker's record lands in ``OUT/records`` on its node; the driver also writes any returned record
  it cannot see there (a cluster without a shared file system).
* ``slurm`` — a submitit job array (one array task per cell, ``sbatch`` via
  :class:`submitit.AutoExecutor`); submission returns at once, job ids are kept in
  ``OUT/sweep/slurm.json`` for ``--status`` / ``--collect``.  ``slurm-local`` runs the same code path
  through submitit's local executor (one process per cell on this machine): the tests use it.
  Cells whose job is still queued or running are not submitted twice.

Every check that can fail (Ray unreachable, no ``sbatch``, a missing extra) raises ``ValueError``
before any cell starts.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from theory._io import write_json_atomic

from ..records import Record
from ..store import RecordStore
from .worker import init_worker, run_cell

__all__ = ["Tally", "run_local", "check_ray", "run_ray", "check_slurm", "submit_slurm", "slurm_jobs",
           "job_states", "parse_minutes"]


class Tally:
    """Counts of a sweep run (ran now / reused, by status) and one progress line per finished cell."""

    def __init__(self, total: int, *, stream=sys.stderr, lines: bool = True):
        self.total, self.stream, self.results, self.lines = total, stream, [], lines

    def add(self, res: dict) -> None:
        self.results.append(res)
        if not self.lines:  # --quiet
            return
        how = "ran" if res["ran"] else "reused"
        why = f" — {res['reason'][:120]}" if res["status"] != "ok" and res.get("reason") else ""
        print(f"[{len(self.results)}/{self.total}] {res['status']:6s} {res['key']} {res.get('label', '')} "
              f"({how}, {res['seconds']:.1f} s){why}", file=self.stream, flush=True)

    def counts(self) -> dict:
        c = {"ran": sum(r["ran"] for r in self.results), "reused": sum(not r["ran"] for r in self.results)}
        for s in ("ok", "failed", "error"):
            c[s] = sum(r["status"] == s for r in self.results)
        c["not_run"] = self.total - len(self.results)
        return c


# ----------------------------------------------------------------------------- local

def run_local(tasks: list[dict], *, workers: int, tally: Tally, gpus: list[str] | None = None) -> None:
    """Run ``tasks`` on a pool of ``workers`` processes; every finished cell goes to ``tally``.
    ``gpus``: each worker's ``CUDA_VISIBLE_DEVICES`` (see :func:`empirics.sweep.worker.gpu_groups`).

    Parameters
    ----------
    tasks : list of dict
        The cells' tasks (:func:`empirics.sweep.worker.make_task`).
    workers : int
        Processes.
    tally : Tally
        Counts and progress lines.
    gpus : list of str, optional
        Each worker's ``CUDA_VISIBLE_DEVICES``.

    Returns
    -------
    None
    """
    if not tasks:
        return
    ctx = multiprocessing.get_context("spawn")
    n = min(workers, len(tasks))
    queue = None
    if gpus:
        queue = ctx.Queue()
        for g in gpus[:n]:
            queue.put(g)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=init_worker, initargs=(os.getpid(), queue))
    futs = {pool.submit(run_cell, t): t for t in tasks}
    try:
        pending = set(futs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                tally.add({**f.result(), "label": futs[f]["label"]})
    except BrokenProcessPool:
        _stop(pool)
        raise RuntimeError("a worker process died (killed, or out of memory) while running cells; the cells it "
                           "was running have no record — run the same command again to run them") from None
    except BaseException:  # Ctrl-C or an error in the driver: cells in flight are lost, finished ones kept
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool) -> None:
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


# ----------------------------------------------------------------------------- ray

def check_ray(address: str | None) -> None:
    """Ray is installed and, when ``address`` is HOST:PORT, something listens there (3 s timeout).

    Parameters
    ----------
    address : str, optional
        ``auto``, ``HOST:PORT`` or None.

    Returns
    -------
    None
        ``ValueError`` when Ray is missing or nothing listens.
    """
    try:
        import ray  # noqa: F401  (deferred: an optional extra, loaded only for --executor ray)
    except ImportError:
        raise ValueError("--executor ray: Ray is not installed; pip install 'inversion-limits[ray]'") from None
    if address in (None, "", "auto"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise ValueError(f"--address: no Ray cluster reachable at {address} ({exc.strerror or exc}); start one with "
                         f"`ray start --head`, or omit --address to start a local one") from None


def run_ray(tasks: list[dict], *, address: str | None, num_cpus: float, num_gpus: float, workers: int | None,
            records: Path, tally: Tally) -> dict:
    """One Ray task per cell on the cluster at ``address`` (a local one when None).

    Parameters
    ----------
    tasks : list of dict
        The cells' tasks.
    address : str, optional
        The cluster (None: start a local one).
    num_cpus, num_gpus : float
        Resources of each task.
    workers : int, optional
        CPUs of a local cluster.
    records : Path
        The store's folder.
    tally : Tally
        Counts and progress lines.

    Returns
    -------
    dict
        What the cluster was.
    """
    import ray  # deferred: an optional extra, loaded only for --executor ray

    if not tasks:
        return {}
    kw = dict(log_to_driver=False, logging_level=logging.WARNING)
    if not address:
        kw["include_dashboard"] = False
    if not address and workers:
        kw["num_cpus"] = int(math.ceil(workers * num_cpus))
    try:
        ctx = ray.init(address=address or None, **kw)
    except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError ... from Ray
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--address: cannot join a Ray cluster at {address or 'a new local one'}: {msg}") from None
    info = {"address": getattr(ctx, "address_info", {}).get("gcs_address", address), "cluster_resources":
            {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}}
    remote = ray.remote(run_cell).options(num_cpus=num_cpus, num_gpus=num_gpus)
    refs = {remote.remote(t): t for t in tasks}
    store = RecordStore(records)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                t = refs[r]
                try:
                    res = ray.get(r)
                except Exception as exc:  # the worker died, or the task could not start (a cell's own errors are
                    first = (str(exc).strip().splitlines() or [""])[-1][:200]  # records, not exceptions)
                    print(f"cell {t['key']} {t['label']}: no record — the Ray task failed ({type(exc).__name__}: "
                          f"{first}); rerun the same command to run it", file=sys.stderr, flush=True)
                    continue
                if store.get(res["key"]) is None:  # the worker's file system is not ours
                    store.put(Record.validate(res["record"]))
                tally.add({**res, "label": t["label"]})
    except BaseException:
        for r in pending:
            ray.cancel(r, force=True)
        raise
    finally:
        ray.shutdown()
    return info


# ----------------------------------------------------------------------------- slurm

def parse_minutes(s) -> int:
    """``--time``: minutes (``90``) or ``[D-]HH:MM[:SS]`` → whole minutes (rounded up).

    Parameters
    ----------
    s : str or int
        The ``--time`` value.

    Returns
    -------
    int
    """
    s = str(s).strip()
    try:
        days = 0
        if "-" in s:
            d, s = s.split("-", 1)
            days = int(d)
        parts = [int(p) for p in s.split(":")]
        if len(parts) == 1:
            mins = parts[0]
        elif len(parts) in (2, 3):
            mins = parts[0] * 60 + parts[1] + (1 if len(parts) == 3 and parts[2] > 0 else 0)
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"--time: expected minutes or [D-]HH:MM[:SS], got {s!r}") from None
    mins += days * 24 * 60
    if mins < 1:
        raise ValueError(f"--time: expected at least one minute, got {s!r}")
    return mins


def check_slurm(cluster: str) -> None:
    """submitit is installed and, for a real cluster, ``sbatch`` is on PATH.

    Parameters
    ----------
    cluster : {'slurm', 'local'}
        A real cluster, or submitit's local executor.

    Returns
    -------
    None
    """
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--executor slurm: sbatch not found on PATH (run on a SLURM login node, or use "
                         "--executor local or ray)")
    try:
        import submitit  # noqa: F401  (deferred: an optional extra, loaded only for SLURM sweeps)
    except ImportError:
        raise ValueError("--executor slurm: submitit is not installed; pip install 'inversion-limits[slurm]'") from None


def _state_path(out: Path) -> Path:
    return Path(out) / "sweep" / "slurm.json"


def slurm_jobs(out: Path) -> dict:
    """The submissions recorded in ``OUT/sweep/slurm.json`` (``{}`` if none).

    Parameters
    ----------
    out : Path
        The sweep's folder.

    Returns
    -------
    dict
    """
    p = _state_path(out)
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        raise ValueError(f"--out: {p} is not a valid sweep state file (move it aside to resubmit)") from None
    if not isinstance(d, dict) or not isinstance(d.get("jobs"), dict):
        raise ValueError(f"--out: {p} is not a valid sweep state file (move it aside to resubmit)")
    return d


_FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
             "DEADLINE", "FINISHED", "INTERRUPTED", "NO PROCESS AND NO RESULT", "GONE"}


def _pid_alive(pid) -> bool:
    """Whether the process ``pid`` (a local job's id) still runs: it exists and is not a zombie (a
    job outliving its driver is reparented; where no init reaps it, it stays a zombie)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    try:  # the state letter follows the parenthesised command name in /proc/PID/stat
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def job_states(state: dict, keys) -> dict:
    """``key -> job state`` for the given cells' last submitted jobs (SLURM: sacct via submitit;
    local: whether the job's process is alive).

    Parameters
    ----------
    state : dict
        :func:`slurm_jobs`'s record.
    keys : iterable of str
        Cell keys.

    Returns
    -------
    dict
    """
    out = {}
    folder = state.get("folder")
    for k in keys:
        jid = state["jobs"].get(k)
        if jid is None:
            continue
        if state.get("cluster") == "local":
            out[k] = "RUNNING" if _pid_alive(jid) else "GONE"
        else:
            try:
                import submitit  # deferred: an optional extra, loaded only for SLURM sweeps
                out[k] = str(submitit.SlurmJob(folder, jid).state).split()[0].upper()
            except Exception:  # sacct unreachable
                out[k] = "UNKNOWN"
    return out


def submit_slurm(tasks: list[dict], *, out: Path, cluster: str, name: str, num_cpus: float, gpus: int,
                 partition: str | None, time_min: int, array_parallelism: int) -> dict:
    """Submit one array task per cell (cells whose previous job is still queued or running are
    skipped); returns the submission record also written to ``OUT/sweep/slurm.json``.

    Parameters
    ----------
    tasks : list of dict
        The cells' tasks.
    out : Path
        The sweep's folder.
    cluster : {'slurm', 'local'}
        Where.
    name : str
        The job name.
    num_cpus : float
        CPUs per task.
    gpus : int
        GPUs per task.
    partition : str, optional
        SLURM partition.
    time_min : int
        Time limit per task, minutes.
    array_parallelism : int
        Tasks running at once.

    Returns
    -------
    dict
    """
    import submitit  # deferred: an optional extra, loaded only for SLURM sweeps

    from .slurm_job import CellJob  # deferred: it imports submitit

    out = Path(out).resolve()
    state = slurm_jobs(out) or {"cluster": cluster, "jobs": {}, "submissions": []}
    if state.get("cluster") != cluster:
        raise ValueError(f"--executor: {out} holds a sweep submitted with {state.get('cluster')!r} jobs; use the "
                         f"same executor or another --out")
    folder = out / "sweep" / "slurm"
    state["folder"] = str(folder / "%j")
    active = {k for k, s in job_states(state, [t["key"] for t in tasks]).items() if s not in _FINISHED}
    todo = [t for t in tasks if t["key"] not in active]
    sub = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cells": len(todo), "skipped_active": sorted(active),
           "job_ids": []}
    if todo:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
        params = dict(name=f"invlimits-{name}", timeout_min=int(time_min), cpus_per_task=max(1, math.ceil(num_cpus)),
                      nodes=1, tasks_per_node=1)
        if cluster == "slurm":
            params["slurm_array_parallelism"] = int(array_parallelism)
            if partition:
                params["slurm_partition"] = partition
            if gpus:
                params["slurm_gpus_per_task"] = int(gpus)
        else:
            params["gpus_per_node"] = int(gpus)
        ex.update_parameters(**params)
        jobs = ex.map_array(CellJob(), todo)
        for t, j in zip(todo, jobs):
            state["jobs"][t["key"]] = str(j.job_id)
        sub["job_ids"] = sorted({str(j.job_id).split("_")[0] for j in jobs})
        sub["parameters"] = params
    state["submissions"].append(sub)
    write_json_atomic(_state_path(out), state)
    return sub
