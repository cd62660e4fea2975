"""How many CPU threads torch may use: the physical cores this process may run on, not more.

torch's default intra-op thread count is the number of logical CPUs of the whole machine; under
contention (another CPU-bound process, several sweep workers) its spinning threads oversubscribe
the cores and training slows down several-fold.  :func:`configure_threads` sets torch's intra-op
threads to

1. ``OMP_NUM_THREADS`` when it is set (the user's explicit choice), else
2. the number of *physical* cores among the CPUs this process may run on
   (``os.sched_getaffinity`` ∩ ``/proc/cpuinfo``'s (physical id, core id) pairs; the logical CPU
   count where that information is missing),

divided by ``share`` (the number of workers sharing them, in sweeps), at least 1; numpy's and
scipy's BLAS pools get the same limit.  The ``invlimits`` command line calls it before any command
that uses torch and prints nothing; the README says so.

Examples
--------
>>> n = available_cores()
>>> n >= 1
True
>>> threads_for(share=10**6)
1
"""

from __future__ import annotations

import os

__all__ = ["available_cores", "threads_for", "configure_threads"]


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def available_cores() -> int:
    """Physical cores among the CPUs this process may run on (logical CPUs if unknown).

    Returns
    -------
    int
    """
    cpus = _affinity()
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return max(1, len(cpus))
    cores, proc, phys, core = set(), None, None, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if proc is not None and proc in cpus:
                cores.add((phys, core if core is not None else proc))
            proc, phys, core = None, None, None
            continue
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "processor" and v.isdigit():
            proc = int(v)
        elif k == "physical id":
            phys = v
        elif k == "core id":
            core = v
    return max(1, len(cores) if cores else len(cpus))


def threads_for(share: int = 1) -> int:
    """Intra-op threads for one of ``share`` workers: ``OMP_NUM_THREADS`` or the physical cores,
    divided by ``share`` (at least 1).

    Parameters
    ----------
    share : int
        Workers sharing the cores.

    Returns
    -------
    int
    """
    if not isinstance(share, int) or share < 1:
        raise ValueError(f"share: expected a positive integer, got {share!r}")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    total = int(env) if env.isdigit() and int(env) > 0 else available_cores()
    return max(1, total // share)


def configure_threads(share: int = 1) -> int:
    """Set torch's intra-op threads — and the BLAS / OpenMP pools numpy and scipy use, through
    ``threadpoolctl`` when it is installed — to :func:`threads_for` (``share``); returns the number.

    numpy's OpenBLAS reads its thread count once, at import, so without the runtime limit two
    workers on two cores each spin two BLAS threads over the small matrices of the theory code.

    Parameters
    ----------
    share : int
        Workers sharing the cores.

    Returns
    -------
    int
        The threads set.
    """
    import torch  # deferred: threads is imported by the command line before it knows it needs torch
    n = threads_for(share)
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits  # deferred: optional (scikit-learn brings it)
        threadpool_limits(n)
    except ImportError:  # pragma: no cover  (scikit-learn, a dependency, brings threadpoolctl)
        pass
    return n
