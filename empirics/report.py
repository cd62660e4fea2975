"""Results as plain data: checks, sections, ``results.json`` and ``report.md``.

Every command-line section returns a :class:`Section`: a list of pass/fail :class:`Check` rows
(what was checked, on which instance, the measured value, the bound it is compared with and the
margin), optional extra tables, figure paths and free-form data.  This module turns sections into
the terminal table, ``results.json`` (schema below) and ``report.md``.  It imports neither torch
nor matplotlib, so printing a report is cheap.

``results.json`` schema (``schema_version`` 2)::

    {"schema_version": 2, "command": str, "argv": [...], "passed": bool, "n_checks": int,
     "seconds": float, "figures": [path, ...], "sections": {key: Section.to_dict()},
     "records": [{key, kind, status, reason, config, result, seconds, device}, ...],
     ...extra top-level keys a command adds}

``records`` lists every run record (:mod:`empirics.store`) the command's tables summarise, each
with its key and full configuration.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

SCHEMA_VERSION = 2

__all__ = [
    "SCHEMA_VERSION",
    "Check",
    "Section",
    "format_table",
    "jsonable",
    "write_json_atomic",
    "write_results",
    "write_report",
]


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
    records: list = field(default_factory=list)  # empirics.runs.Record objects this section summarises
    headline: str = ""  # a verdict printed first (terminal and report.md)

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


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths, dataclasses and non-finite floats to JSON-safe data.

    Non-finite floats become the strings ``"inf"``, ``"-inf"``, ``"nan"`` so the file stays
    strict JSON.
    """
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON through a temporary file and ``os.replace`` so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(jsonable(payload), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _fmt(v: Any, column: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):  # pass/FAIL only where the column is a verdict
        if column in ("passed", "pass", "verdict"):
            return "pass" if v else "FAIL"
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return str(f)
        if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
            return f"{f:.3e}"
        return f"{f:.4g}"
    return str(v)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 markdown: bool = False) -> str:
    """Render rows of dicts as an aligned text table (or a Markdown table)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c), c) for c in columns] for r in rows]
    if markdown:
        head = "| " + " | ".join(columns) + " |"
        sep = "| " + " | ".join("---" for _ in columns) + " |"
        body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join([head, sep, *body])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


CHECK_COLUMNS = ["check", "instance", "value", "bound", "tolerance", "margin", "passed"]


def section_text(section: Section) -> str:
    """Terminal rendering of a section: the check table, then its extra tables."""
    status = ("pass" if section.passed else "FAIL") if section.checks else "no checks"
    parts = [f"== {section.title} ({status}, "
             f"{sum(c.passed for c in section.checks)}/{len(section.checks)} checks, "
             f"{section.seconds:.1f} s) =="]
    if section.headline:
        parts.append(section.headline)
    if section.checks:
        parts.append(format_table([c.to_dict() for c in section.checks], CHECK_COLUMNS))
    for name, rows in section.tables.items():
        parts.append(f"-- {name} --")
        parts.append(format_table(rows))
    return "\n".join(parts)


def write_results(out: str | Path, command: str, argv: Sequence[str], sections: Iterable[Section],
                  seconds: float, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/results.json`` for a command; returns its path."""
    sections = list(sections)
    recs, seen = [], set()
    for s in sections:
        for r in s.records:
            if r.key not in seen:
                seen.add(r.key)
                recs.append(r.summary())
    n_checks = sum(len(s.checks) for s in sections)
    payload = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "argv": list(argv),
        "passed": all(s.passed for s in sections),
        "n_checks": n_checks,
        "seconds": seconds,
        "figures": [f for s in sections for f in s.figures],
        "sections": {s.key: s.to_dict() for s in sections},
        "records": recs,
    }
    if extra:
        payload.update(extra)
    return write_json_atomic(Path(out) / "results.json", payload)


def _relative(fig, out: Path) -> str:
    """A figure path relative to the report's own folder (so links work wherever it is opened)."""
    return os.path.relpath(Path(fig).resolve(), Path(out).resolve())


def write_report(out: str | Path, title: str, sections: Iterable[Section], seconds: float,
                 preamble: str = "", errata: bool = True) -> Path:
    """Write ``out/report.md``: verdicts first, then one part per section with its checks, tables
    and figures (linked relative to ``out``), then the errata."""
    from .errata import errata_markdown
    out = Path(out)
    sections = list(sections)
    ok = all(s.passed for s in sections)
    n = sum(len(s.checks) for s in sections)
    nfail = sum(not c.passed for s in sections for c in s.checks)
    if n:
        head = (f"**Overall: {'PASS' if ok else 'FAIL'}** — {n - nfail} of {n} checks passed in "
                f"{len(sections)} section(s), {seconds:.1f} s.")
    else:
        head = f"**No pass/fail checks in this run** ({len(sections)} section(s), {seconds:.1f} s); see the tables."
    lines = [f"# {title}", "", head, ""]
    for s in sections:
        if s.headline:
            lines += [f"**{s.title}:** {s.headline}", ""]
    if preamble:
        lines += [preamble, ""]
    if n:
        lines += ["Each check compares a measured `value` with a `bound` within the stated `tolerance`; "
                  "`margin` is signed so that `margin ≥ 0` exactly when the check passed.", ""]
    for s in sections:
        status = ("pass" if s.passed else "FAIL") if s.checks else "no checks"
        lines += [f"## {s.title} — {status}", ""]
        if s.description:
            lines += [s.description, ""]
        if s.checks:
            lines += [format_table([c.to_dict() for c in s.checks], CHECK_COLUMNS, markdown=True), ""]
        for name, rows in s.tables.items():
            lines += [f"### {name}", ""]
            if name in s.table_notes:
                lines += [s.table_notes[name], ""]
            lines += [format_table(rows, markdown=True), ""]
        for fig in s.figures:
            lines += [f"![{Path(fig).stem}]({_relative(fig, out)})", ""]
    if errata:
        lines += [errata_markdown()]
    path = out / "report.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
