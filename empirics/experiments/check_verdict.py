"""check-defense's verdict: every attack against every finite bound as a one-sided test.

Each comparison tests H₀ "the attack's expected MSE per element is ≥ the bound"
(:func:`empirics.checks.compare_all`, Bonferroni over *all* comparisons of the run at family-wise
level :data:`empirics.checks.DEFAULT_ALPHA` = 0.1 %).  Where the bound has a value per held-out
input (the exact MMSE of the float64 channel at each observation, Cramér–Rao per input) the test
is *paired*: the standard error is that of the per-input difference over the same inputs and the
same observations.  Otherwise the attack's and the bound's standard errors (test-set mean;
Monte-Carlo H(x) or prior Fisher information) combine as independent.

Statuses: ``violated`` (significantly below), ``consistent`` (at or above), ``inconclusive`` (below
but not significantly).  Only a ``violated`` comparison with a *rigorous* bound is a bug; below an
estimate it means the estimate's assumptions fail there.

Examples
--------
An attack at 0.9 ± 0.01 against a "rigorous" floor of 1.0 (10 s.e. below it) is a bug; against an
estimate it is not.

>>> from empirics.experiments.check_bounds import Bound
>>> a = AttackRun("bayes", np.array([0.8, 1.0] * 50) + np.linspace(-1e-3, 1e-3, 100))
>>> rows = comparisons([a], {"thm": Bound(1.0, True, "")})
>>> rows[0]["status"], verdict(rows, {"thm": Bound(1.0, True, "")}, [a], [], no_certificate="")[1]
('violated', True)
>>> rows = comparisons([a], {"fit": Bound(1.0, False, "")})
>>> verdict(rows, {"fit": Bound(1.0, False, "")}, [a], [], no_certificate="a fitted mixture")[1]
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..checks import DEFAULT_ALPHA, compare_all

__all__ = ["AttackRun", "comparisons", "verdict"]


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
    """``{attack, bound, rigorous, value, bound_value, difference, stderr, z, z_crit, status, paired, n}``
    for every attack and every finite bound."""
    keys, pairs = [], []
    for a in attacks:
        for name, b in bounds.items():
            if b.finite:
                keys.append((a.name, name, b.rigorous))
                pairs.append(_pair(a, b))
    rows = []
    for (att, name, rig), p, c in zip(keys, pairs, compare_all(pairs, alpha=alpha)):
        rows.append({"attack": att, "bound": name, "rigorous": rig, "value": c.value, "bound_value": c.bound,
                     "difference": c.difference, "stderr": c.stderr, "z": c.z, "z_crit": c.z_crit,
                     "alpha": c.alpha, "m": c.m, "status": c.status, "paired": c.paired, "n": p["n"]})
    return rows


def _counts(rows) -> str:
    n = {s: sum(r["status"] == s for r in rows) for s in ("consistent", "inconclusive", "violated")}
    return f"{n['consistent']} consistent, {n['inconclusive']} inconclusive, {n['violated']} violated"


def verdict(rows: list[dict], bounds: dict, attacks, warnings: list[str], *, no_certificate: str) -> tuple[str, bool]:
    """The one-paragraph verdict and whether a rigorous bound was significantly violated (a bug)."""
    alpha = f"family-wise α = {DEFAULT_ALPHA * 100:g} % over {rows[0]['m'] if rows else 0} comparisons"
    best = min(attacks, key=lambda a: a.mse) if attacks else None
    best_txt = (f"the best attack ({best.name}) reaches MSE {best.mse:.4g} ± {best.stderr:.2g} per element"
                if best else "no attack ran")
    bugs = [r for r in rows if r["rigorous"] and r["status"] == "violated"]
    rig = {k: b for k, b in bounds.items() if b.finite and b.rigorous}
    est = {k: b for k, b in bounds.items() if b.finite and not b.rigorous and b.any_attacker}
    tail = f" {len(warnings)} warning(s): " + " | ".join(warnings) if warnings else ""
    if bugs:
        r = min(bugs, key=lambda r: r["z"])
        return (f"BUG: attack {r['attack']} reaches MSE {r['value']:.4g}, significantly below the rigorous bound "
                f"{r['bound']} = {r['bound_value']:.4g} (z = {r['z']:.2f}, {alpha}) — a certificate is wrong; "
                f"please report it. {len(bugs)} rigorous comparison(s) violated." + tail), True
    if rig:
        name, b = max(rig.items(), key=lambda kv: kv[1].value)
        rr = [r for r in rows if r["rigorous"]]
        return (f"certified: every attacker's MSE per element is at least {b.value:.4g} ({name}, rigorous for the "
                f"deployed channel); {best_txt}; no rigorous bound is significantly violated ({_counts(rr)} of "
                f"{len(rr)} comparisons with rigorous bounds, {alpha})." + tail), False
    if est:
        name, b = max(est.items(), key=lambda kv: kv[1].value)
        er = [r for r in rows if not r["rigorous"]]
        return (f"no certificate ({no_certificate}); estimated floor {b.value:.4g} ({name}, an estimate, not a "
                f"guarantee); {best_txt}; comparisons with estimates: {_counts(er)} ({alpha}) — an attack "
                f"significantly below an estimate means its assumptions fail there, not a bug." + tail), False
    reasons = "; ".join(f"{k}: {b.assumptions}" for k, b in bounds.items()) or "no bound computed"
    return f"no finite bound ({reasons}); {best_txt}." + tail, False
