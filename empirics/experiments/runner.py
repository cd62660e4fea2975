"""``execute(config, store)``: run a configuration once, store its record, reuse it ever after.

Every kind names its runner ``fn(config, ctx) -> Outcome`` (:attr:`empirics.records.Kind.run`).
:func:`execute` returns the stored record when a valid one with the configuration's key exists
(status ``ok`` or ``failed`` — an ``error`` record is retried), otherwise runs, records and
returns it.  Executors of sweeps (:mod:`empirics.sweep`) call the same function in their workers,
so a cell means the same thing everywhere.
"""

from __future__ import annotations

import time
import traceback


from ..records import Config, Outcome, Record, get_kind
from ..progress import as_progress
from ..store import RecordStore, make_record
from .common import RunContext

__all__ = ["Outcome", "execute", "execute_all", "device_name"]


def device_name(device) -> str:
    """The device a run used, as the record states it (``cpu``, ``cuda:0`` ...).

    Parameters
    ----------
    device : str or torch.device
        ``auto``, ``cpu``, ``cuda:N`` ...

    Returns
    -------
    str
    """
    from ..device import resolve_device  # deferred: torch
    try:
        return str(resolve_device(device))
    except (ValueError, RuntimeError):
        return str(device)


def execute(config: Config, store: RecordStore | None, ctx: RunContext | None = None, *,
            on_error: str = "raise", reuse: bool = True) -> Record:
    """Run ``config`` unless ``store`` already holds its final record; store and return the record.

    ``on_error="raise"`` (default) propagates exceptions (bad input stays a ``ValueError``);
    ``"record"`` stores an ``error`` record with the exception and returns it (sweeps go on).

    Parameters
    ----------
    config : Config
        The run.
    store : RecordStore, optional
        Where records are read and written (None: run, do not store).
    ctx : RunContext, optional
        Where and how it runs (device, progress, folders); not part of any identity.
    on_error : {'raise', 'record'}
        Propagate an exception, or store it as an ``error`` record.
    reuse : bool
        Reuse a final record of the same key.

    Returns
    -------
    Record
    """
    ctx = ctx or RunContext()
    if store is not None and reuse:
        rec = store.get(config)
        if rec is not None and rec.status in ("ok", "failed"):
            return rec
    run = get_kind(config.kind).run
    if run is None:
        raise ValueError(f"config: kind {config.kind!r} has no runner (its command writes its records)")
    t0 = time.perf_counter()
    old_threads = None
    if ctx.threads:
        import torch  # deferred: the runner's own import of torch
        old_threads = torch.get_num_threads()
        torch.set_num_threads(int(ctx.threads))
    try:
        out = run(config, ctx)
        rec = make_record(config, out.status, result=out.result, reason=out.reason,
                          seconds=time.perf_counter() - t0, device=device_name(ctx.device))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if on_error != "record":
            raise
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        rec = make_record(config, "error", reason=tb[:2000], seconds=time.perf_counter() - t0,
                          device=device_name(ctx.device))
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)
    if store is not None:
        store.put(rec)
    return rec


def execute_all(configs, store: RecordStore | None, ctx: RunContext | None = None, *, desc: str = "runs",
                on_error: str = "raise") -> list[Record]:
    """:func:`execute` each configuration in order (each key once); one record per configuration.

    Parameters
    ----------
    configs : iterable of Config
        The runs.
    store : RecordStore, optional
        Where records are read and written.
    ctx : RunContext, optional
        Where and how it runs (device, progress, folders); not part of any identity.
    desc : str
        Progress-bar label.
    on_error : {'raise', 'record'}
        As for :func:`execute`.

    Returns
    -------
    list of Record
        One per configuration, in order.
    """
    ctx = ctx or RunContext()
    prog = as_progress(ctx.progress)
    if store is not None:
        store.scan()  # validate every stored entry first: invalid ones anywhere are quarantined, named
    configs = list(configs)
    cache: dict[str, Record] = {}
    out = []
    for i, cfg in enumerate(prog.bar(configs, desc=desc, unit="run"), 1):
        k = cfg.key()
        if k not in cache:
            if store is None or not store.done(cfg):  # one line per run that computes (reused ones are silent)
                prog.step(f"{desc} [{i}/{len(configs)}]: {cfg.label()} ...")
            cache[k] = execute(cfg, store, ctx, on_error=on_error)
        out.append(cache[k])
    return out
