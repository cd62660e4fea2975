"""Results as plain data: checks, sections, ``results.json`` and ``report.md``.

Every command-line section returns a :class:`Section`: a list of pass/fail :class:`Check` rows
(what was checked, on which instance, the measured value, the bound it is compared with and the
margin), optional extra tables, figure paths and free-form data.  This module turns sections into
the terminal table, ``results.json`` (schema below) and ``report.md``.  It imports neither torch
nor matplotlib, so printing a report is cheap.

``results.json`` schema (``schema_version`` 1)::

    {"schema_version": 1, "command": str, "argv": [...], "passed": bool, "seconds": float,
     "sections": {key: Section.to_dict()}, ...extra top-level keys a command adds}
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

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "Check",
    "Section",
    "format_table",
    "jsonable",
    "write_json_atomic",
    "append_jsonl",
    "read_jsonl",
    "write_results",
    "write_report",
]


@dataclass
class Check:
    """One pass/fail row: ``value`` compared with ``bound``.

    ``margin`` is signed so that a positive margin means the check holds with room to spare
    (for "value ≥ bound" checks it is ``value − bound``; for "value ≤ bound" it is
    ``bound − value``; for equalities it is ``tolerance − |value − bound|``).
    """

    check: str
    instance: str
    value: float | None
    bound: float | None
    margin: float | None
    passed: bool
    note: str = ""

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

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, check: str, instance: str, value, bound, margin, passed, note: str = "") -> Check:
        c = Check(check, instance, _num(value), _num(bound), _num(margin), bool(passed), note)
        self.checks.append(c)
        return c

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


def append_jsonl(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one JSON record (one finished run) to a JSONL file, flushed to disk.

    A torn last line left by an interrupted write is cut off first, so the new record starts on a
    fresh line (and :func:`read_jsonl` sees it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size:
        with open(path, "r+b") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
    with open(path, "a") as fh:
        fh.write(json.dumps(jsonable(dict(record))) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`append_jsonl`; a torn last line (crash) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # torn tail of an interrupted write
    return out


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


CHECK_COLUMNS = ["check", "instance", "value", "bound", "margin", "passed"]


def section_text(section: Section) -> str:
    """Terminal rendering of a section: the check table, then its extra tables."""
    parts = [f"== {section.title} ({'pass' if section.passed else 'FAIL'}, "
             f"{sum(c.passed for c in section.checks)}/{len(section.checks)} checks, "
             f"{section.seconds:.1f} s) =="]
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
    payload = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "argv": list(argv),
        "passed": all(s.passed for s in sections),
        "seconds": seconds,
        "sections": {s.key: s.to_dict() for s in sections},
    }
    if extra:
        payload.update(extra)
    return write_json_atomic(Path(out) / "results.json", payload)


ERRATA_MD = """\
## Errata and departures from the papers

Where a claim is false as printed, a test holds the counterexample and the package implements the
corrected mathematics; the other items are documented choices and measurements.

**Hardness reduction (MixCon appendix, Thm B.10–B.11).**

1. *Clause bias.* The printed bias −2 is right only for exactly three literals: an unsatisfied
   2-literal clause outputs 0 and a 4-literal one outputs 2. We use −(k−1) (exact for k = 1..4,
   repeated literals and tautologies); `bias="paper"` reproduces −2 so the failure can be shown.
2. *Soundness proof.* "x_i = 0" should read "x_i = 1"; T = m + 128B²n should be m + 100B²n;
   1/(36B²) should be 1/(3600B²) and 1/(5√B) should be 5/√B; "n ≤ 3m" is false when a variable
   occurs in no clause (use n_used ≤ 3m). What holds per instance, and is checked against RC2 and
   every attack: ‖h(x)−z‖² ≥ |U(sign x)|·(1 − 3/(100B)) ≥ |U| − n_used/100 (max over Δ of
   2BΔ − 100B²Δ² = 1/100 exactly). The printed margin chain is positive only for B > 1.84·10⁵;
   with the sharper inequality, for B > 1.44·10⁴ (exact thresholds by sympy).
3. *Constants.* B ≥ 15000 with 100B² copies per variable is 2.25·10¹⁰ copies (the project's
   design notes print 2.25·10⁸, which is B²): never buildable. `copies` is a parameter and the
   compact form (one copy pair weighted √copies) has the identical residual.
4. *Lipschitz step.* ‖W₁‖ ≤ √(200B²+3B) ≤ 15B and ‖W₂‖ = √2 exactly (the proof prints ‖W⁽²⁾‖ ≤ 2
   and bounds W⁽¹⁾ under that name); the printed product 30B is about 3× the exact one.

**Entropy limit (CEM paper, Thms 1–2 and supplementary S.1–S.2).**

5. *Theorem 2 is Huber's bound.* Its sum equals the Huber upper bound on H(z) minus H(ε) (checked
   symbolically and to 1e-10 numerically). The Kolchinsky–Tracey (KL) bound is never looser and
   the max-entropy (Gaussian, Cov z) bound wins when components overlap; all three are offered.
6. *Rigour.* Theorem 2 is a certificate only when ẑ *is* a Gaussian mixture (e.g. an affine
   encoder on mixture data) and H(x) is known or lower-bounded. On fitted mixtures and real data
   every Theorem 2 number is an *estimate* and is labelled `rigorous = no`.
7. *What can be certified.* For data in [0,1]^d, H(x) ≤ 0, so Theorems 1+2 never certify a
   per-dimension MSE above 1/(2πe) ≈ 0.0585 (`theory.certifiable_mse`, reported by `check-defense`).
8. *Proof typos (harmless).* Eq. 13 / S5 writes log(2πe·ε) where ξ is meant; the step called
   "Jensen" in Eq. 11 / S3 is AM–GM on the eigenvalues; Eqs. 14–15 / S6–S7 write (2πe)^d with the
   input dimension where the dimension of z is meant (the factors cancel in Eq. 16). Theorem 1
   states no equality case: it is tight iff x|z is Gaussian with isotropic covariance whose trace
   does not depend on z.
9. *Nonparametric entropy estimators* (Kozachenko–Leonenko, KSG) are biased in d ≥ 5, so the
   package does not use them: every entropy is a closed form, a mixture bound or a Monte-Carlo
   estimate of a known density, with its standard error.

**CEM, Algorithm 1 (CEM paper, Eq. 5–8).**

10. *Released code vs paper.* The code computes no mixture and no log-determinant (per-class
    k-means, one scalar variance per cluster inside log(v + 0.01), a ReLU floor at 0.125σ², λ
    rescaled by 0.001/lr). We implement Eq. 3/7 (`objective="paper"`) and offer the recipe
    separately (`objective="code"`), never mixed.
11. *Choices the paper leaves open.* Eq. 7's sum index reads i = j where j = 1 is meant; Eq. 6 uses
    the weight π already updated by Eq. 5; the mixture models the noise-free ẑ (fitting the noisy
    z and subtracting Σp can leave an indefinite matrix); ΔΣ is taken about the component mean
    (about the batch mean it is singular for the typical 4 points per component per batch).
12. *No noise, no bound.* Without feature noise L_C (and I(z; ẑ)) is infinite; CEM then uses
    Σp = `min_noise_var`·I and warns.
13. *λ scale.* The paper's λ = 16 belongs to the released code's loss scale; with the paper's
    Eq. 7 (a sum of log-determinants) it dominates the task loss: on digits (σ = 0.1, 5 epochs)
    λ = 16 leaves the accuracy at chance (8.7 %). Our digits experiments use λ = 0.01–0.05;
    `--preset paper` keeps λ = 16 as the paper states it.
14. *Overhead.* The per-step log-determinants are kept in a low-rank form (Eq. 6's change has rank
    ≤ n_j) and the per-epoch mixture is warm-started EM; `invlimits bench` measures the whole
    epoch cost against the naive route (fresh Cholesky of every covariance every step, EM from
    scratch).

**Attacks and metrics.**

15. *Truncation attack (Yang et al., Eq. 12).* log 0 of truncated entries is undefined; we impute
    (smallest kept log-probability − 1) per vector.
16. *SSIM* follows Wang et al. 2004 (11×11 Gaussian window, σ = 1.5); images smaller than 11 pixels
    (8×8 digits) are not border-cropped.
17. *Attack optimality check.* "No attack below the MMSE" is checked against the error of the exact
    posterior mean on the same test pairs, with the standard error of the paired difference (far
    tighter than the Monte-Carlo s.e. of the MMSE itself); both numbers are in the table.
"""


def write_report(out: str | Path, title: str, sections: Iterable[Section], seconds: float,
                 preamble: str = "", errata: bool = True) -> Path:
    """Write ``out/report.md``: one part per section with its checks, tables and figures."""
    out = Path(out)
    sections = list(sections)
    ok = all(s.passed for s in sections)
    lines = [f"# {title}", "",
             f"**Overall: {'PASS' if ok else 'FAIL'}** — "
             f"{sum(len(s.checks) for s in sections)} checks in {len(sections)} sections, "
             f"{seconds:.1f} s.", ""]
    if preamble:
        lines += [preamble, ""]
    lines += ["Each check compares a measured `value` with a `bound`; `margin` is signed so that a "
              "positive margin means the check holds with room to spare.", ""]
    for s in sections:
        lines += [f"## {s.title} — {'pass' if s.passed else 'FAIL'}", ""]
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
            rel = os.path.relpath(fig, out) if os.path.isabs(fig) else fig
            lines += [f"![{Path(fig).stem}]({rel})", ""]
    if errata:
        lines += [ERRATA_MD]
    path = out / "report.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
