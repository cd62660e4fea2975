"""What a command's part returns: pass/fail :class:`Check` rows and a :class:`Section` of them.

Plain data, with neither rendering nor files (those are :mod:`empirics.report`'s): the kinds of
:mod:`empirics.kinds` build their tables as sections, which the command line and the sweep
collector both print and write.  Imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from theory._io import jsonable

__all__ = ["Check", "CheckError", "Section"]


class CheckError(AssertionError):
    """A check row whose ``passed`` disagrees with the sign of its ``margin`` (a programming error)."""


@dataclass
class Check:
    """One pass/fail row: ``value`` compared with ``bound`` within a stated ``tolerance``.

    ``margin`` is signed so that ``margin ≥ 0`` exactly when the check passed: for "value ≥
    bound" checks it is ``value − bound`` plus the allowed tolerance (e.g. ``z_crit`` standard
    errors); for "value ≤ bound" it is ``bound − value`` plus the tolerance; for equalities it is
    ``tolerance − |value − bound|``.  ``tolerance`` says in words (or as a number) what was allowed.
    """

    check: str
    instance: str
    value: float | None
    bound: float | None
    margin: float | None
    passed: bool
    note: str = ""
    tolerance: Any = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class Section:
    """The outcome of one part of a run (theory, reduction, attacks, defenses ...)."""

    key: str
    title: str
    description: str = ""
    checks: list[Check] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    table_notes: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    records: list = field(default_factory=list)  # empirics.records.Record objects this section summarises
    headline: str = ""  # a verdict printed first (terminal and report.md)
    lead: str = ""  # one line before everything else: stdout's first line, report.md's first under its title

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, check: str, instance: str, value, bound, margin, passed, note: str = "",
            tolerance=None) -> Check:
        """Append a check row; ``margin ≥ 0`` must hold exactly when ``passed`` (else CheckError)."""
        c = Check(check, instance, _num(value), _num(bound), _num(margin), bool(passed), note, _num(tolerance))
        m = c.margin
        if isinstance(m, float) and math.isfinite(m) and (m >= 0) != c.passed:
            raise CheckError(f"check {check!r} on {instance!r}: margin {m} but passed={c.passed}")
        self.checks.append(c)
        return c

    def add_comparison(self, check: str, instance: str, cmp, note: str = "") -> Check:
        """A row from an :class:`empirics.checks.Comparison` (value ≥ bound, one-sided test):
        passes unless the shortfall is significant; margin = difference + z_crit·s.e."""
        tol = (f"{cmp.z_crit:.2f} s.e. (one-sided, family-wise α = {cmp.alpha:g} over {cmp.m})"
               if cmp.stderr > 0 else "0 (exact)")
        extra = f"s.e. {cmp.stderr:.2g}, z = {cmp.z:.2f}, {cmp.status}"
        return self.add(check, instance, cmp.value, cmp.bound, cmp.margin, cmp.passed,
                        note=f"{note}; {extra}" if note else extra, tolerance=tol)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "key": self.key,
                "title": self.title,
                "description": self.description,
                "passed": self.passed,
                "n_checks": len(self.checks),
                "n_failed": sum(not c.passed for c in self.checks),
                "checks": [c.to_dict() for c in self.checks],
                "tables": self.tables,
                "table_notes": self.table_notes,
                "figures": self.figures,
                "seconds": self.seconds,
                "headline": self.headline,
                **({"lead": self.lead} if self.lead else {}),
                "records": [r.key for r in self.records],
                **self.data,
            }
        )


def _num(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return v
