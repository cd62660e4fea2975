"""What every executor runs for one cell: :func:`run_cell` (a plain function of plain data).

A task is a dict — the cell's configuration as a dict, its key, the records folder, torch threads,
device, data root and checkpoint folder — so it pickles the same way for a process pool, a Ray task
and a SLURM array job.  The worker rebuilds the configuration, checks that its key is the one the
driver computed (same package version on both sides), and calls
:func:`empirics.experiments.runner.execute` with ``on_error="record"``: the function every command
uses, so a cell means the same thing everywhere.  The worker writes the record itself, atomically,
into ``records/<key>.json``; no two workers write one file.

Training checkpoints go to ``checkpoints/<key>.pt`` (one file per cell) so that a cell that was
killed (a SLURM time limit, a preempted node, a killed driver) resumes from its last finished
epoch; the checkpoint is deleted once the cell's record is final (``ok`` or ``failed``) unless
``keep_checkpoints``.

Each worker process appends one line per cell start and end to its own file
``events/<host>-<pid>.jsonl`` (never shared), so which process ran what, and when, can be counted.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import time
from pathlib import Path

from ..experiments.common import RunContext
from ..experiments.runner import execute
from ..records import config_from_dict
from ..store import RecordStore

__all__ = ["make_task", "run_cell", "init_worker", "gpu_groups"]


def make_task(cell, out, *, threads: int, device: str = "auto", data_root=None, keep_checkpoints: bool = False) -> dict:
    """The plain-data task of ``cell`` for a sweep writing into ``out``.

    Parameters
    ----------
    cell : Cell
        The cell.
    out : Path
        The sweep's folder.
    threads : int
        Torch threads of the worker.
    device : str
        Torch device.
    data_root : str or Path, optional
        Folder of datasets read from local files.
    keep_checkpoints : bool
        Keep a finished cell's checkpoint.

    Returns
    -------
    dict
        JSON-plain: it travels to Ray and SLURM workers.
    """
    out = Path(out).resolve()
    return {"config": cell.config.to_dict(), "key": cell.key, "label": cell.label(), "records": str(out / "records"),
            "checkpoints": str(out / "checkpoints"), "events": str(out / "sweep" / "events"), "threads": int(threads),
            "device": str(device), "data_root": None if data_root is None else str(Path(data_root).resolve()),
            "keep_checkpoints": bool(keep_checkpoints)}


def _event(task: dict, **kw) -> None:
    try:
        d = Path(task["events"])
        d.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": task["key"], "pid": os.getpid(), "host": socket.gethostname(),
                           "time": time.time(), **kw}) + "\n"
        with open(d / f"{socket.gethostname()}-{os.getpid()}.jsonl", "a") as fh:
            fh.write(line)
    except OSError:  # a log line is never worth failing a cell for
        pass


def run_cell(task: dict) -> dict:
    """Run (or reuse) one cell; returns ``{key, status, reason, seconds, ran, record}``.

    Parameters
    ----------
    task : dict
        :func:`make_task`'s task.

    Returns
    -------
    dict
    """
    cfg = config_from_dict(task["config"])
    if cfg.key() != task["key"]:
        raise ValueError(f"cell {task['key']}: this worker computes key {cfg.key()} for the same configuration "
                         "(a different package version on this node?)")
    store = RecordStore(task["records"])
    before = store.done(cfg)
    ckpt = Path(task["checkpoints"]) / f"{task['key']}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(device=task["device"], progress=False, data_root=task["data_root"], checkpoint=ckpt,
                     threads=task["threads"])
    if not before:
        _event(task, event="start", threads=task["threads"])
    t0 = time.perf_counter()
    rec = execute(cfg, store, ctx, on_error="record")
    if not before:
        _event(task, event="end", status=rec.status)
    if rec.status in ("ok", "failed") and not task["keep_checkpoints"]:
        ckpt.unlink(missing_ok=True)
    return {"key": rec.key, "status": rec.status, "reason": rec.reason, "seconds": time.perf_counter() - t0,
            "ran": not before, "host": socket.gethostname(), "pid": os.getpid(), "record": rec.to_dict()}


def gpu_groups(devices: list[str], per_worker: int, workers: int) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each local worker: disjoint groups of ``per_worker`` of the
    ``devices`` (ids as the driver sees them), reused round-robin when workers outnumber groups.

    Parameters
    ----------
    devices : list of str
        Visible device ids.
    per_worker : int
        Devices each worker takes.
    workers : int
        Workers.

    Returns
    -------
    list of str

    Examples
    --------
    >>> gpu_groups(["0", "1", "2", "3"], 2, 2)
    ['0,1', '2,3']
    >>> gpu_groups(["5"], 1, 3)
    ['5', '5', '5']
    """
    n = max(1, len(devices) // per_worker)
    groups = [",".join(devices[g * per_worker:(g + 1) * per_worker]) for g in range(n)]
    return [groups[i % len(groups)] for i in range(workers)]


def init_worker(driver_pid: int | None = None, gpu_queue=None) -> None:
    """Process-pool initializer: leave Ctrl-C to the driver, die with it (Linux), and take one
    group of GPUs from ``gpu_queue`` (before torch is imported in this process).

    The driver handles SIGINT (it stops the pool and reports); a worker that outlived a killed
    driver would otherwise go on computing cells nobody waits for, racing a rerun.

    Parameters
    ----------
    driver_pid : int, optional
        The driver's process id.
    gpu_queue : multiprocessing queue, optional
        Hands each worker its ``CUDA_VISIBLE_DEVICES``.

    Returns
    -------
    None
    """
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if driver_pid is not None and os.getppid() != driver_pid:  # the driver died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):  # not Linux: workers exit when the pool's pipes close
        pass
