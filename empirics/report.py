"""Presentation: sections as the terminal table, ``results.json`` and ``report.md``.

Every command-line section returns a :class:`~empirics.results.Section` (plain data: pass/fail
:class:`~empirics.results.Check` rows, tables, figure paths, free-form data).  This module turns
sections into the terminal table, ``results.json`` (schema below) and ``report.md``, each file
written atomically (:func:`theory._io.atomic_write`).  It imports neither torch nor matplotlib, so
printing a report is cheap.

``results.json`` schema (``schema_version`` 2)::

    {"schema_version": 2, "command": str, "argv": [...], "passed": bool, "n_checks": int,
     "seconds": float, "figures": [path, ...], "sections": {key: Section.to_dict()},
     "records": [{key, kind, status, reason, config, result, seconds, device}, ...],
     ...extra top-level keys a command adds}

``records`` lists every run record (:mod:`empirics.store`) the command's tables summarise, each
with its key and full configuration.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from theory._io import write_json_atomic, write_text_atomic

from .errata import errata_markdown
from .results import Check, CheckError, Section

SCHEMA_VERSION = 2

__all__ = ["SCHEMA_VERSION", "Check", "CheckError", "Section", "format_table", "section_text", "write_results", "write_report"]


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
    """Render rows of dicts as an aligned text table (or a Markdown table).

    Parameters
    ----------
    rows : sequence of mapping
        The rows.
    columns : sequence of str, optional
        Column order (default: as the keys first appear).
    markdown : bool
        A Markdown table.

    Returns
    -------
    str
    """
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
    """Terminal rendering of a section: the check table, then its extra tables.

    Parameters
    ----------
    section : Section
        The section.

    Returns
    -------
    str
    """
    status = ("pass" if section.passed else "FAIL") if section.checks else "no checks"
    parts = [section.lead] if section.lead else []
    parts += [f"== {section.title} ({status}, "
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
    """Write ``out/results.json`` for a command; returns its path.

    Parameters
    ----------
    out : str or Path
        The command's folder.
    command : str
        The command's name.
    argv : sequence of str
        Its arguments.
    sections : iterable of Section
        Its sections.
    seconds : float
        Its run time.
    extra : mapping, optional
        Top-level keys the command adds.

    Returns
    -------
    Path
    """
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
    and figures (linked relative to ``out``), then the errata.

    Parameters
    ----------
    out : str or Path
        The command's folder.
    title : str
        The report's title.
    sections : iterable of Section
        Its sections.
    seconds : float
        Run time.
    preamble : str
        Text after the verdicts.
    errata : bool
        Append the errata.

    Returns
    -------
    Path
    """
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
    lines = [f"# {title}", ""]
    lines += [x for s in sections if s.lead for x in (s.lead, "")]
    lines += [head, ""]
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
    return write_text_atomic(out / "report.md", "\n".join(lines))
