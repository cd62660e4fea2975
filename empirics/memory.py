"""Guards before memory runs out: a run's peak memory estimated from shapes, refused in one line.

A command that could allocate more than the machine has — check-defense on an encoder with a
million outputs, a training run with a huge bottleneck, an attack on such features — first adds
up what it will hold, from the shapes alone (:class:`MemoryPlan`: what stays allocated throughout,
plus the largest of its phases, each a list of :class:`Need` — *what*, how many bytes, and the
option that makes it smaller), compares it with what this process may still allocate
(:func:`available_memory`: ``MemAvailable`` of ``/proc/meminfo`` and the cgroup's limit minus its
usage, the smaller), and refuses with one line (:class:`MemoryRefused`, a ``ValueError``: the
command line prints it and exits 2) before any of it is allocated::

    not enough memory for this check: about 1.07 PiB needed, 22.5 GiB available (MemAvailable); the
    largest part is the fitted feature mixture: 30 full covariances of 1,000,000 × 1,000,000
    features, float64, and their factorisations: 1.07 PiB — no option makes it smaller: an encoder
    with at most about 4,485 outputs per input fits (22.5 GiB); this one has 1,000,000

The estimate counts the large arrays a run makes (with a stated factor for the work arrays of a
factorisation), not every temporary; it is a guard against orders of magnitude, not a prediction.
Memory already allocated when the check runs (the data, the user's encoder) is already missing from
the available figure and is not counted again.

Examples
--------
>>> plan = MemoryPlan("check", resident=[Need("features", 4e9, "--max-samples")],
...                   phases={"fit": [Need("covariances", 6e9)], "attack": [Need("decoder", 1e9)]})
>>> fmt_bytes(plan.peak())
'9.31 GiB'
>>> plan.check(available=(20 * 2**30, "test"))      # fits: nothing happens
>>> plan.check(available=(2 * 2**30, "test"))
Traceback (most recent call last):
...
empirics.memory.MemoryRefused: not enough memory for check: about 9.31 GiB needed, 2 GiB available (test); the largest part is covariances: 5.59 GiB — no option makes it smaller; also smaller with --max-samples
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["Need", "MemoryPlan", "MemoryRefused", "available_memory", "fmt_bytes", "largest_fitting",
           "FLOAT32", "FLOAT64"]

FLOAT32, FLOAT64 = 4, 8


class MemoryRefused(ValueError):
    """A run whose estimated peak memory is above what is available (one line: needed, available,
    the largest part and the option that reduces it)."""


def fmt_bytes(n: float) -> str:
    """Bytes in binary units with three significant digits (``'21.7 GiB'``).

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str

    Examples
    --------
    >>> fmt_bytes(512), fmt_bytes(3 * 2**20), fmt_bytes(2.4e14)
    ('512 B', '3 MiB', '218 TiB')
    """
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


@dataclass(frozen=True)
class Need:
    """One large allocation: what it is, its bytes, and the option that makes it smaller ("" = none)."""

    what: str
    bytes: float
    reduce: str = ""


@dataclass
class MemoryPlan:
    """What a run will allocate: ``resident`` (held throughout) plus the largest of ``phases``
    (allocated one after another, each freed before the next)."""

    command: str
    resident: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)

    def peak(self) -> float:
        """Estimated peak bytes: Σ resident + max over phases of Σ phase."""
        top = max((sum(n.bytes for n in p) for p in self.phases.values()), default=0.0)
        return sum(n.bytes for n in self.resident) + top

    def needs(self) -> list:
        """Every need of the peak (resident ones and those of the largest phase)."""
        top = max(self.phases.values(), key=lambda p: sum(n.bytes for n in p), default=[])
        return list(self.resident) + list(top)

    def largest(self) -> Need | None:
        """The largest single need of the peak."""
        return max(self.needs(), key=lambda n: n.bytes, default=None)

    def check(self, available: tuple[float, str] | None = None, *, hint: str = "") -> None:
        """Refuse (:class:`MemoryRefused`) when the peak is above the available memory.

        Parameters
        ----------
        available : (bytes, source), optional
            Default: :func:`available_memory`.
        hint : str
            Said when the largest need has no option that reduces it (e.g. what would fit).

        Returns
        -------
        None
        """
        avail, source = available_memory() if available is None else available
        need = self.peak()
        if need <= avail:
            return
        big = self.largest()
        how = f"reduce it with {big.reduce}" if big.reduce else "no option makes it smaller"
        others = sorted({n.reduce for n in self.needs() if n.reduce and n is not big and n.bytes > 0.05 * need})
        more = f"; also smaller with {', '.join(others)}" if others else ""
        raise MemoryRefused(f"not enough memory for {self.command}: about {fmt_bytes(need)} needed, "
                            f"{fmt_bytes(avail)} available ({source}); the largest part is {big.what}: "
                            f"{fmt_bytes(big.bytes)} — {how}{more}" + (f": {hint}" if hint else ""))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _walk_up(root: Path, rel: str):
    """The cgroup folder of ``rel`` under ``root`` and each of its parents up to ``root`` (limits are hierarchical)."""
    d = root / rel.strip("/")
    while True:
        yield d
        if d == root or root not in d.parents:
            return
        d = d.parent


def _cgroup_room(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> tuple[int, str] | None:
    """(limit − usage, source) of the tightest memory limit on this process's cgroup or its parents
    (v2 ``memory.max`` / ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``);
    None without any limit."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, ctrls, rel = parts
        if hier == "0" and ctrls == "":  # cgroup v2
            base, files, name = root, ("memory.max", "memory.current"), "memory.max"
        elif "memory" in ctrls.split(","):  # cgroup v1
            base = root / "memory"
            files, name = ("memory.limit_in_bytes", "memory.usage_in_bytes"), "memory.limit_in_bytes"
        else:
            continue
        for d in _walk_up(base, rel):
            lim, cur = _read_int(d / files[0]), _read_int(d / files[1])
            if lim is None or cur is None or lim >= 2 ** 60:  # "max" (v2) or a huge number (v1): no limit here
                continue
            room = (max(0, lim - cur), f"cgroup {name} {fmt_bytes(lim)}")
            best = room if best is None or room[0] < best[0] else best
    return best


def available_memory() -> tuple[int, str]:
    """Bytes this process may still allocate, and where that figure comes from.

    The smaller of ``MemAvailable`` (``/proc/meminfo``: free memory plus what the kernel can reclaim
    without swapping) and the memory cgroup's limit minus its current usage (cgroup v2
    ``memory.max`` / ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``).
    Without ``/proc`` (not Linux): the physical memory (``os.sysconf``), or no limit at all.

    Returns
    -------
    tuple of (int, str)
        Bytes, and e.g. ``"MemAvailable"`` or ``"cgroup memory.max 8 GiB"``.
    """
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable"))
                break
    except (OSError, ValueError, IndexError):
        pass
    cg = _cgroup_room()
    if cg is not None:
        found.append(cg)
    if not found:
        try:
            found.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - platform without sysconf
            return 2 ** 62, "unknown (not checked)"
    return min(found)


def largest_fitting(estimate: Callable[[int], float], upto: int, available: float) -> int:
    """The largest ``k`` in [0, ``upto``] whose ``estimate(k)`` (non-decreasing in k) fits in ``available``.

    Parameters
    ----------
    estimate : callable int -> float
        Bytes needed at size k.
    upto : int
        The size asked for.
    available : float
        Bytes available.

    Returns
    -------
    int

    Examples
    --------
    >>> largest_fitting(lambda k: 8.0 * k * k, 10**6, 8e6)
    1000
    """
    lo, hi = 0, int(upto)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(mid) <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _product(shape) -> int:
    return int(math.prod(int(s) for s in shape))
