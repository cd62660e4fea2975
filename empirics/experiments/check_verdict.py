"""check-defense's verdict: every attack against every finite bound as a one-sided test.

Each comparison tests H₀ "the attack's expected MSE per element is ≥ the bound"
(:func:`empirics.checks.compare_all`, Bonferroni over *all* comparisons of the run at family-wise
level :data:`empirics.checks.DEFAULT_ALPHA` = 0.1 %).  Where the bound has a value per held-out
input (the exact MMSE of the float64 channel at each observation, Cramér–Rao per input) the test
is *paired*: the standard error is that of the per-input difference over the same inputs and the
same observations.  Otherwise the attack's and the bound's standard errors (test-set mean;
Monte-Carlo H(x) or prior Fisher information) combine as independent.

Statuses: ``violated`` (significantly below), ``consistent`` (at or above), ``inconclusive`` (below
but not significantly).  Only a ``violated`` comparison with a *guaranteed* floor (``guarantee``
deterministic, or confidence — which itself fails with probability ≤ its α) is a bug; below an
estimate it means the estimate's assumptions fail there.  A guaranteed floor is a fixed number
(its s.e. is 0): only the attack's standard error enters its test.

The verdict states the tightest deterministic floor ("≥ X (deterministic)") and the tightest
confidence floor ("≥ X at confidence 1 − α") separately; they are never mixed.

Examples
--------
An attack at 0.9 ± 0.01 against a deterministic floor of 1.0 (10 s.e. below it) is a bug; against
an estimate it is not.

>>> from empirics.experiments.check_bounds import Bound
>>> a = AttackRun("bayes", np.array([0.8, 1.0] * 50) + np.linspace(-1e-3, 1e-3, 100))
>>> rows = comparisons([a], {"thm": Bound(1.0, "deterministic", "")})
>>> rows[0]["status"], verdict(rows, {"thm": Bound(1.0, "deterministic", "")}, [a], [], no_certificate="")[1]
('violated', True)
>>> rows = comparisons([a], {"fit": Bound(1.0, "none", "")})
>>> verdict(rows, {"fit": Bound(1.0, "none", "")}, [a], [], no_certificate="a fitted mixture")[1]
False
>>> b = {"det": Bound(0.5, "deterministic", ""), "conf": Bound(0.7, "confidence", "", confidence=0.999)}
>>> print(verdict(comparisons([a], b), b, [a], [], no_certificate="")[0][:103])
certified: every attacker's MSE per element is ≥ 0.5 (deterministic; det) and ≥ 0.7 at confidence 0.999

Floors of 0 hold for any attacker: the verdict says "trivial", never "certified".

>>> z = {"det": Bound(0.0, "deterministic", "")}
>>> verdict(comparisons([a], z), z, [a], [], no_certificate="")[0][:60]
'trivial: the guaranteed floors (det) are 0 here, so nothing '
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..checks import DEFAULT_ALPHA, compare_all

__all__ = ["AttackRun", "comparisons", "verdict", "floor_text", "tightest_floors"]


@dataclass
class AttackRun:
    """One attack's per-input squared errors (per element) on the held-out inputs."""

    name: str
    errors: np.ndarray
    extra: dict = field(default_factory=dict)  # psnr / ssim for images

    @property
    def mse(self) -> float:
        return float(self.errors.mean())

    @property
    def stderr(self) -> float:
        n = len(self.errors)
        return float(self.errors.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf

    def row(self) -> dict:
        return {"name": self.name, "mse": self.mse, "mse_stderr": self.stderr, "n": int(len(self.errors)),
                **self.extra}


def _pair(a: AttackRun, b) -> dict:
    if b.per_input is not None:
        n = min(len(a.errors), len(b.per_input))
        diff = a.errors[:n] - b.per_input[:n]
        se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        return {"value": float(a.errors[:n].mean()), "bound": float(b.per_input[:n].mean()), "paired_stderr": se,
                "n": n}
    return {"value": a.mse, "value_stderr": a.stderr, "bound": b.value, "bound_stderr": b.stderr,
            "n": int(len(a.errors))}


def comparisons(attacks, bounds: dict, *, alpha: float = DEFAULT_ALPHA) -> list[dict]:
    """``{attack, bound, guarantee, value, bound_value, difference, stderr, z, z_crit, status, paired, n}``
    for every attack and every finite bound (``guarantee``: the bound's, "none" for Cramér–Rao,
    which binds unbiased attackers only).

    Parameters
    ----------
    attacks : sequence of AttackRun
        The attacks' per-input errors.
    bounds : dict
        Name → :class:`Bound`.
    alpha : float
        Family-wise level over all comparisons.

    Returns
    -------
    list of dict
    """
    keys, pairs = [], []
    for a in attacks:
        for name, b in bounds.items():
            if b.finite:
                keys.append((a.name, name, b.guarantee if b.any_attacker else "none"))
                pairs.append(_pair(a, b))
    rows = []
    for (att, name, g), p, c in zip(keys, pairs, compare_all(pairs, alpha=alpha)):
        rows.append({"attack": att, "bound": name, "guarantee": g, "value": c.value, "bound_value": c.bound,
                     "difference": c.difference, "stderr": c.stderr, "z": c.z, "z_crit": c.z_crit,
                     "alpha": c.alpha, "m": c.m, "status": c.status, "paired": c.paired, "n": p["n"]})
    return rows


def _counts(rows) -> str:
    n = {s: sum(r["status"] == s for r in rows) for s in ("consistent", "inconclusive", "violated")}
    return f"{n['consistent']} consistent, {n['inconclusive']} inconclusive, {n['violated']} violated"


def floor_text(v: float, digits: int = 4) -> str:
    """A floor printed with ``digits`` significant digits, rounded *down*: the printed floor never
    exceeds it by more than the 1e-12 relative that the floors' own float64 allowance covers
    (so 0.7, stored as 0.69999999999999996, prints as 0.7).

    Parameters
    ----------
    v : float
        A floor.
    digits : int
        Significant digits.

    Returns
    -------
    str

    Examples
    --------
    >>> floor_text(0.49999915), floor_text(0.0784), floor_text(1.23456e-9), floor_text(0.7)
    ('0.4999', '0.0784', '1.234e-09', '0.7')
    """
    if not v > 0 or not math.isfinite(v):
        return f"{v:g}"
    e = math.floor(math.log10(v)) - digits + 1
    q = math.floor(v / 10.0 ** e * (1 + 1e-12))
    return f"{q * 10.0 ** e:.{digits}g}"


def _tightest(bounds: dict, guarantee: str):
    cands = {k: b for k, b in bounds.items() if b.guaranteed and b.guarantee == guarantee}
    return max(cands.items(), key=lambda kv: kv[1].value) if cands else None


def tightest_floors(bounds: dict) -> dict:
    """``{"deterministic": {bound, value}, "confidence": {bound, value, confidence}}``, each only if one exists.

    Parameters
    ----------
    bounds : dict
        Name → :class:`Bound`.

    Returns
    -------
    dict
    """
    out = {}
    for g in ("deterministic", "confidence"):
        t = _tightest(bounds, g)
        if t:
            out[g] = {"bound": t[0], "value": t[1].value, **({"confidence": t[1].confidence} if t[1].confidence else {})}
    return out


def verdict(rows: list[dict], bounds: dict, attacks, warnings: list[str], *, no_certificate: str) -> tuple[str, bool]:
    """The one-paragraph verdict and whether a guaranteed floor was significantly violated (a bug).

    Parameters
    ----------
    rows : list of dict
        :func:`comparisons`'s rows.
    bounds : dict
        Name → :class:`Bound`.
    attacks : sequence of AttackRun
        The attacks.
    warnings : list of str
        The run's warnings.
    no_certificate : str
        Why no floor is guaranteed ("" when one is).

    Returns
    -------
    tuple of (str, bool)
    """
    alpha = f"family-wise α = {DEFAULT_ALPHA * 100:g} % over {rows[0]['m'] if rows else 0} comparisons"
    best = min(attacks, key=lambda a: a.mse) if attacks else None
    best_txt = (f"the best attack ({best.name}) reaches MSE {best.mse:.4g} ± {best.stderr:.2g} per element"
                if best else "no attack ran")
    bugs = [r for r in rows if r["guarantee"] != "none" and r["status"] == "violated"]
    det, conf = _tightest(bounds, "deterministic"), _tightest(bounds, "confidence")
    est = {k: b for k, b in bounds.items() if b.finite and b.guarantee == "none" and b.any_attacker}
    tail = f" {len(warnings)} warning(s): " + " | ".join(warnings) if warnings else ""
    if bugs:
        r = min(bugs, key=lambda r: r["z"])
        b = bounds[r["bound"]]
        odds = ("" if b.guarantee == "deterministic" else
                f" (or the {1 - b.confidence:g} chance that its Monte-Carlo limits missed)")
        return (f"BUG: attack {r['attack']} reaches MSE {r['value']:.4g}, significantly below the {b.label()} floor "
                f"{r['bound']} = {r['bound_value']:.4g} (z = {r['z']:.2f}, {alpha}) — a certificate is wrong{odds}; "
                f"please report it. {len(bugs)} comparison(s) with guaranteed floors violated." + tail), True
    floors = [x for x in (det, conf) if x]
    if floors and max(b.value for _, b in floors) <= 0:
        # every guaranteed floor is 0, which any attacker meets: nothing is certified (never "certified ≥ 0")
        gr = [r for r in rows if r["guarantee"] != "none"]
        return (f"trivial: the guaranteed floors ({', '.join(k for k, _ in floors)}) are 0 here, so nothing beyond "
                f"MSE ≥ 0 is certified for the deployed channel; {best_txt} ({_counts(gr)} of {len(gr)} comparisons "
                f"with guaranteed floors, {alpha})." + tail), False
    if det or conf:
        parts = []
        if det:
            parts.append(f"≥ {floor_text(det[1].value)} (deterministic; {det[0]})")
        if conf:
            parts.append(f"≥ {floor_text(conf[1].value)} at confidence {conf[1].confidence:g} ({conf[0]}; its Monte-Carlo "
                         f"limits hold together with probability ≥ {conf[1].confidence:g})")
        why = "" if det else " No deterministic floor: " + next(
            (b.assumptions for b in bounds.values() if b.guarantee == "deterministic" and not b.finite),
            "none computed") + "."
        gr = [r for r in rows if r["guarantee"] != "none"]
        return (f"certified: every attacker's MSE per element is {' and '.join(parts)}, for the deployed channel; "
                f"{best_txt}; no guaranteed floor is significantly violated ({_counts(gr)} of {len(gr)} comparisons "
                f"with guaranteed floors, {alpha}).{why}" + tail), False
    if est:
        name, b = max(est.items(), key=lambda kv: kv[1].value)
        er = [r for r in rows if r["guarantee"] == "none"]
        return (f"no certificate ({no_certificate}); estimated floor {b.value:.4g} ({name}, an estimate, not a "
                f"guarantee); {best_txt}; comparisons with estimates: {_counts(er)} ({alpha}) — an attack "
                f"significantly below an estimate means its assumptions fail there, not a bug." + tail), False
    reasons = "; ".join(f"{k}: {b.assumptions}" for k, b in bounds.items()) or "no bound computed"
    return f"no finite bound ({reasons}); {best_txt}." + tail, False
