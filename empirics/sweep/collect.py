"""Aggregate whatever records of a sweep exist into its kind's tables and figures.

Each kind builds its own tables (:attr:`empirics.records.Kind.sections`, e.g. the Fig. 3 fit in
:mod:`empirics.kinds.entropy_mse`, the Table 1 verdicts in :mod:`empirics.kinds.defense_table`) —
the same code its command uses.  Cells are grouped by everything in their configuration except
the axes a table summarises over (:attr:`~empirics.records.Kind.group`), so a spec with several
datasets, λ values or noise levels gives one table (and figure) per group.

Cells without a record (not run yet, or in flight) are counted as missing; cells with an ``error``
record are listed with their message and left out of every table.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..results import Section
from .spec import experiments

__all__ = ["status_rows", "collect_sections", "group_signature", "group_records", "describe", "slug"]


def group_signature(exp: str, config: dict) -> str:
    """The part of a cell's configuration that its table does *not* summarise over (as JSON).

    Parameters
    ----------
    exp : str
        The sweep's experiment.
    config : dict
        A cell's configuration.

    Returns
    -------
    str
    """
    kind = experiments()[exp]
    return kind.group(config) if kind.group is not None else json.dumps(config, sort_keys=True)


def group_records(records, group) -> dict:
    """``{signature: [records]}`` of the records that exist and did not raise (grid order kept).

    Parameters
    ----------
    records : sequence of Record or None
        The records (None: not run yet).
    group : callable
        ``config dict -> signature``.

    Returns
    -------
    dict
    """
    groups: dict = {}
    for r in records:
        if r is None or r.status == "error":
            continue
        groups.setdefault(group(r.config), []).append(r)
    return groups


def describe(config: dict, *extra: str) -> str:
    """A group's title from its signature's training settings (and ``extra`` words).

    Parameters
    ----------
    config : dict
        A group's signature, parsed (with its ``train``).
    *extra : str
        Words appended (empty ones skipped).

    Returns
    -------
    str
    """
    t = config["train"]
    bits = [t["dataset"], f"{t['epochs']} epochs", f"lr {t['lr']:g}", f"batch {t['batch_size']}"]
    if t.get("optimizer") != "adam":
        bits.append(t["optimizer"])
    return ", ".join(bits + [e for e in extra if e])


def slug(i: int, n: int) -> str:
    """Suffix of the i-th of n groups' section keys and figure names ("" when there is one).

    Parameters
    ----------
    i, n : int
        The group's index and the number of groups.

    Returns
    -------
    str
    """
    return "" if n == 1 else f"_{i + 1}"


def status_rows(cells, records) -> list[dict]:
    """One row per cell: key, label, status (``missing`` without a record), reason, seconds.

    Parameters
    ----------
    cells : sequence of Cell
        The spec's cells.
    records : sequence of Record or None
        Aligned with ``cells``.

    Returns
    -------
    list of dict
    """
    rows = []
    for c, r in zip(cells, records):
        rows.append({"key": c.key, "cell": c.label(), "status": r.status if r else "missing",
                     "reason": (r.reason[:160] if r and r.status != "ok" else ""),
                     "seconds": r.seconds if r else None, "device": r.device if r else ""})
    return rows


def collect_sections(spec, cells, records, out) -> list[Section]:
    """The experiment's sections from the records that exist (``records`` aligned with ``cells``).

    Parameters
    ----------
    spec : SweepSpec
        The spec.
    cells : sequence of Cell
        Its cells.
    records : sequence of Record or None
        Aligned with ``cells``.
    out : str or Path
        Where figures go.

    Returns
    -------
    list of Section
    """
    if not any(r is not None and r.status != "error" for r in records):
        return []
    kind = experiments()[spec.experiment]
    return kind.sections([r for r in records if r is not None and r.status != "error"], Path(out))
