"""Read a folder of run records: counts, integrity, and a CSV of every record for your own analysis.

``invlimits records DIR`` reads ``DIR/records`` (or ``DIR`` itself when it holds the record files)
through the record store (:class:`empirics.store.RecordStore`): every record is validated — its
configuration's key and its content digest over configuration *and* result — and an invalid or
edited one is moved to ``quarantine/`` with the reason (printed here, one line each; the command
that wrote it recomputes that run once).  It prints the records per kind and status and how many
are unverified (written before records carried a digest).  ``--csv FILE`` writes one row per
record — its own fields, then the configuration and the result flattened with dotted column
names (``config.train.lr``, ``result.accuracy``) — with the standard library; in Python,
``RecordStore(DIR / "records").to_frame()`` gives the same table as a pandas DataFrame.  This
command writes nothing else (no ``results.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from ..store import RecordStore, StoreWarning, records_table

__all__ = ["add_arguments", "main", "STANDALONE", "EXAMPLES"]

#: this command reads a folder and writes no results of its own (no --out, --seed, --device)
STANDALONE = True

EXAMPLES = """examples:
  invlimits records runs/verify                       # counts per kind and status; invalid records quarantined
  invlimits records runs/verify --csv runs/verify.csv # every record as one CSV row
  invlimits records runs/sweep-fig3 --kind entropy-vs-mse --csv fig3.csv"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (argparse)."""
    p.add_argument("dir", type=Path, metavar="DIR", help="a command's --out folder (or its records/ folder)")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write every record as one row of FILE")
    p.add_argument("--kind", default=None, help="only records of this kind (e.g. train, entropy-vs-mse)")


def _root(d: Path) -> Path:
    if not d.is_dir():
        raise ValueError(f"DIR: {d} is not a directory")
    if (d / "records").is_dir():
        return d / "records"
    if any(p.suffix == ".json" for p in d.iterdir()) or (d / "quarantine").is_dir():
        return d
    raise ValueError(f"DIR: {d} holds no records/ folder and no record files")


def write_csv(path: Path, columns, rows) -> None:
    """Rows (dicts) to a CSV file; a missing entry is an empty cell."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--csv: {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()})
    except OSError as exc:
        raise ValueError(f"--csv: cannot write {path}: {exc.strerror or exc}") from None


def main(args) -> int:
    """Run the subcommand; its exit status (2: bad input)."""
    store = RecordStore(_root(Path(args.dir)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreWarning)
        recs = store.scan()
    for w in caught:
        if issubclass(w.category, StoreWarning):
            print(f"invlimits records: warning: {w.message}", file=sys.stderr)
    if args.kind is not None:
        known = sorted({r.kind for r in recs.values()})
        if args.kind not in known:
            raise ValueError(f"--kind: expected one of the kinds found {known}, got {args.kind!r}")
    columns, rows = records_table(recs.values(), kind=args.kind)
    counts = Counter((r["kind"], r["status"]) for r in rows)
    print(f"{len(rows)} records in {store.root}" + (f" (kind {args.kind})" if args.kind else ""))
    for kind in sorted({k for k, _ in counts}):
        per = ", ".join(f"{counts[(kind, s)]} {s}" for s in ("ok", "failed", "error") if counts[(kind, s)])
        print(f"  {kind}: {per}")
    unverified = sum(not r["verified"] for r in rows)
    if unverified:
        print(f"{unverified} record(s) written before records carried a digest: sealed when first read, their "
              f"earlier content unverified (column 'verified')")
    if store.quarantined:
        print(f"{len(store.quarantined)} invalid record(s) moved to {store.quarantine_dir} just now (reasons above); "
              f"the command that wrote them recomputes those runs once")
    if args.csv is not None:
        write_csv(args.csv, columns, rows)
        print(f"wrote {args.csv} ({len(rows)} rows × {len(columns)} columns)")
    return 0
