"""Kind ``check-defense``: a user's encoder held to every bound — its configuration (identity =
resume key), its result and its tables.  Torch-free.  The check itself (and its record) is
:func:`empirics.experiments.check_defense_record`, in :mod:`empirics.experiments.defense_check`.

The encoder's identity is the factory spec ``MODULE:FUNCTION`` plus a content hash of the module
file (for a library object: of its class sources, structure and parameters), and the
``--weights`` file's path and content hash when one is given — so an edited encoder or new
weights never reuse an old record.  (A change in a file the module imports is not seen: run into a fresh ``--out``.)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from scipy import stats

from theory._validate import expect_int, expect_number

from ..checks import Comparison
from ..records import Config, Kind, Result
from ..registry import names, spec
from ..results import Section
from ..specs import AttackSpec

__all__ = ["CheckDefenseConfig", "CheckDefenseResult", "file_hash", "min_mc_draws", "check_mc_settings",
           "check_section", "accuracy_line", "guarantee_label", "CHECK_ATTACKS", "PRIOR_DATASET", "SPLIT_DATASET", "ALPHA", "KIND"]

#: attacks check-defense runs by name (they reconstruct from the deployed features); the exact
#: Bayes attack ``bayes`` is added by itself whenever the channel's posterior is known
CHECK_ATTACKS = ("decoder", "gan", "optimization")
#: the dataset names of a user's own Gaussian-mixture prior and of a user's own DataSplit (library
#: use; their content hashes identify them)
PRIOR_DATASET, SPLIT_DATASET = "gaussian-mixture", "data-split"
#: hex digits kept of a sha256 content hash
HASH_DIGITS = 16
#: samples drawn from a user's Gaussian-mixture prior for training and held-out test (as many as
#: the built-in synthetic-mixture has)
PRIOR_N_TRAIN, PRIOR_N_TEST = 3000, 1000
#: Monte-Carlo draws for H(x), Fisher informations and the departure (H(x) of synthetic-mixture:
#: s.e. ~0.02 nats, i.e. ~0.3 % of a Theorem 1 floor in d = 16)
N_MC = 20000
#: family-wise level of the confidence floors: each holds with probability ≥ 1 − ALPHA (Bonferroni
#: over the Monte-Carlo quantities it uses)
ALPHA = 1e-3
#: the fewest draws accepted at any level, and the skewness of the per-draw departure ‖δ/σ‖² up to
#: which :func:`min_mc_draws` makes its CLT limit mean what it says
N_MC_FLOOR, SKEW_MAX = 2000, 3.0
#: Monte-Carlo quantities a confidence floor may use (H(x), and the departure η² when no rounding
#: analysis bounds it): the level of each is α / MC_QUANTITIES at most
MC_QUANTITIES = 2


def edgeworth_draws(alpha_each: float, skewness: float) -> int:
    r"""Draws for which the one-sided CLT limit at level ``alpha_each`` errs by at most half its level.

    The first Edgeworth term of a standardised mean of n draws with skewness γ moves the tail
    probability at z = Φ⁻¹(1 − a) by γ(z² − 1)φ(z)/(6√n); it stays ≤ a/2 when
    :math:`n \ge (\gamma(z^2-1)\varphi(z)/(3a))^2`.

    Parameters
    ----------
    alpha_each : float
        The level a of one limit, in (0, 1).
    skewness : float
        γ, the skewness of one draw.

    Returns
    -------
    int

    Examples
    --------
    >>> edgeworth_draws(5e-4, 3.0)
    1221
    """
    z = float(stats.norm.isf(alpha_each))
    return int(math.ceil((abs(skewness) * (z * z - 1) * float(stats.norm.pdf(z)) / (3 * alpha_each)) ** 2))


def min_mc_draws(alpha: float = ALPHA) -> int:
    """The fewest Monte-Carlo draws check-defense accepts at family-wise level ``alpha``.

    Of the Monte-Carlo quantities behind a confidence floor, H(x) enters through a limit that holds
    at any n (:func:`theory.mixture_entropy_lower_limit`); the departure η² of an encoder outside
    the rounding model enters through a one-sided CLT limit at level α/2, which needs
    :func:`edgeworth_draws` for skewness up to :data:`SKEW_MAX` (the run reports the measured
    skewness and warns when it asks for more), and never fewer than :data:`N_MC_FLOOR`.

    Parameters
    ----------
    alpha : float
        Family-wise level of the confidence floors, in (0, 1).

    Returns
    -------
    int

    Examples
    --------
    >>> min_mc_draws(1e-3), min_mc_draws(1e-6)
    (2000, 13576)
    """
    return max(N_MC_FLOOR, edgeworth_draws(alpha / MC_QUANTITIES, SKEW_MAX))


def check_mc_settings(n_mc, alpha) -> None:
    """``alpha`` in (0, 1) and ``n_mc`` ≥ :func:`min_mc_draws` (one ValueError naming the argument).

    Parameters
    ----------
    n_mc : int
        Monte-Carlo draws.
    alpha : float
        Family-wise level of the confidence floors.

    Returns
    -------
    None
    """
    ok = not isinstance(alpha, bool) and isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0 < alpha < 1
    if not ok:
        raise ValueError(f"alpha: expected the family-wise level of the confidence floors, a number in (0, 1), "
                         f"got {alpha!r}")
    expect_int(n_mc, "n_mc")
    need = min_mc_draws(alpha)
    if n_mc < need:
        raise ValueError(f"n_mc: expected at least {need} Monte-Carlo draws (confidence floors at family-wise "
                         f"α = {alpha:g} need them for their CLT limit to mean what it says), got {n_mc}")


def file_hash(path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:HASH_DIGITS]


def check_sigma(v, name, *, positive: bool) -> float:
    """A noise level: > 0 (``positive``: Theorem 2 needs noise) or ≥ 0, finite."""
    if positive:
        return expect_number(v, name, positive=True, what="a positive finite number (Theorem 2 needs noise)")
    return expect_number(v, name, nonneg=True, what="a finite number >= 0")


@dataclass(frozen=True, kw_only=True)
class CheckDefenseConfig(Config):
    """Everything that decides a check-defense result (see the module docstring for the encoder's identity).

    ``train_encoder`` False: the encoder is checked exactly as given (``--weights``, a module
    instance, or one without trainable parameters); ``head`` False: no head, no accuracy.
    ``n_train`` / ``n_test`` apply to a user's Gaussian-mixture prior only.  ``alpha`` is the
    family-wise level of the confidence floors (they hold with probability ≥ 1 − alpha);
    ``n_mc`` ≥ :func:`min_mc_draws` (alpha).  ``max_samples``: only the first that many training and
    held-out inputs are used (absent from the configuration's dict when None, so keys written before
    it existed are unchanged).
    """

    kind: ClassVar[str] = "check-defense"
    encoder: str
    encoder_hash: str
    weights: Optional[str] = None
    weights_hash: Optional[str] = None
    dataset: str = "digits"
    dataset_hash: Optional[str] = None
    noise: float = 0.1
    encoder_noise: float = 0.0
    train_encoder: bool = True
    head: bool = True
    epochs: int = 15
    attacks: tuple[AttackSpec, ...] = ()
    fisher_samples: int = 256
    k_per_class: int = 3
    n_mc: int = N_MC
    alpha: float = ALPHA
    n_train: int = PRIOR_N_TRAIN
    n_test: int = PRIOR_N_TEST
    seed: int = 0
    max_samples: Optional[int] = None  # only the first N training and held-out inputs (None: all)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if d.get("max_samples") is None:  # added later: configurations without it keep their keys
            d.pop("max_samples", None)
        return d

    def __post_init__(self):
        if self.dataset not in (PRIOR_DATASET, SPLIT_DATASET):
            s = spec(self.dataset)
            if "check-defense" not in s.commands and not s.description.startswith("in-memory"):
                raise ValueError(f"dataset: check-defense takes {sorted(names('check-defense'))}, got {self.dataset!r}")
            object.__setattr__(self, "dataset", s.name)
        elif not self.dataset_hash:
            raise ValueError(f"dataset_hash: a {self.dataset} needs its content hash")
        check_sigma(self.noise, "noise", positive=True)
        check_sigma(self.encoder_noise, "encoder_noise", positive=False)
        for n in ("epochs", "fisher_samples", "k_per_class", "n_mc", "n_train", "n_test"):
            expect_int(getattr(self, n), n)
        check_mc_settings(self.n_mc, self.alpha)
        expect_int(self.seed, "seed", minimum=0)
        if self.max_samples is not None:
            expect_int(self.max_samples, "max_samples")
        specs = tuple(AttackSpec.parse(a) for a in self.attacks)
        bad = [a.name for a in specs if a.name not in CHECK_ATTACKS]
        if bad:
            raise ValueError(f"attacks: check-defense runs {list(CHECK_ATTACKS)} (and bayes by itself), got {bad}")
        object.__setattr__(self, "attacks", specs)

    def label(self) -> str:
        return f"{self.encoder} on {self.dataset}, σ = {self.noise:g}"


@dataclass(frozen=True, kw_only=True)
class CheckDefenseResult(Result):
    """What check-defense found: attacks, bounds, the comparisons between them, warnings, verdict, and
    ``floors``: the tightest deterministic and the tightest confidence floor (absent: none exists)."""

    dataset: str
    noise: float
    encoder_noise: float
    encoder_trained: bool
    head_trained: bool
    accuracy: Optional[float]
    chance: float
    n_test: int
    attacks: list
    bounds: dict
    comparisons: list
    warnings: list
    verdict: str
    bug: bool
    certifiable_mse: Optional[float] = None
    affine: Optional[dict] = None
    conditional_entropy: dict = field(default_factory=dict)
    dfil: dict = field(default_factory=dict)
    floors: dict = field(default_factory=dict)  # the tightest floor of each guarantee: {bound, value, confidence?}



# ----------------------------------------------------------------------------- tables

ATTACKS_NOTE = ("Held-out per-element reconstruction MSE (± s.e. over inputs) of each attack, all from the same draw "
                "of the deployed (noisy) features; bayes is the exact posterior mean of the float64 channel.")
BOUNDS_NOTE = (
    "Floors on any attacker's per-element MSE (Cramér–Rao: unbiased attackers only). guarantee = deterministic: "
    "exact quantities and proved inequalities only; confidence 1 − α: Monte-Carlo quantities enter through "
    "one-sided limits and the floor holds with at least that probability; estimate: a point estimate or a "
    "reference, which an attack may beat without a bug. Every assumption is listed; a missing value is 'no "
    "finite bound', with the reason.")
COMPARISONS_NOTE = ("attack MSE − bound, its standard error (paired over the same inputs where the bound has a value "
                    "per input) and z; violated = significantly below at family-wise 0.1 %; only a violated guaranteed "
                    "floor is a bug (exit status 1).")


def guarantee_label(b: dict) -> str:
    """A stored floor's guarantee in words.

    Parameters
    ----------
    b : dict
        A bound of a result (``guarantee`` and, for a confidence floor, ``confidence``).

    Returns
    -------
    str
        ``deterministic``, ``confidence 0.999`` or ``estimate``.
    """
    g = b.get("guarantee", "none")
    return {"deterministic": "deterministic", "none": "estimate"}.get(g) or f"confidence {b.get('confidence'):g}"


def accuracy_line(res: dict) -> str:
    """The model's held-out accuracy beside chance, in one line (what check-defense prints first).

    Parameters
    ----------
    res : dict
        A check-defense result.

    Returns
    -------
    str

    Examples
    --------
    >>> accuracy_line({"accuracy": 0.9644, "chance": 0.1022, "n_test": 450, "head_trained": True,
    ...                "encoder_trained": True, "warnings": []})
    'Accuracy 0.964 ± 0.009 on 450 held-out inputs (chance 0.102): encoder + head trained under the noise.'
    """
    if res.get("accuracy") is None:
        return (f"Accuracy: not measured (no head trained); chance is {res['chance']:.3f} — privacy figures of an "
                f"encoder whose usefulness is unknown.")
    a, n = float(res["accuracy"]), int(res["n_test"])
    se = math.sqrt(max(a * (1 - a), 0.0) / n) if n > 0 else float("nan")
    who = "encoder + head trained" if res.get("encoder_trained") else "head trained on the encoder as given"
    near = any(w.startswith(("near chance", "weak model")) for w in res.get("warnings", []))
    return (f"Accuracy {a:.3f} ± {se:.3f} on {n} held-out inputs (chance {res['chance']:.3f}): {who} under the noise."
            + (" Near chance or weak — see the warnings." if near else ""))


def check_section(rec, title: str) -> Section:
    """The check-defense section of a record: the verdict, one check per comparison with a guaranteed
    floor, the attacks, bounds, comparisons and warnings.

    Parameters
    ----------
    rec : Record
        A check-defense record.
    title : str
        The section's title.

    Returns
    -------
    Section
    """
    res = rec.result
    sec = Section("check-defense", title,
                  description="Every attack against every finite bound, each a one-sided test (family-wise α = "
                              "0.1 % over all comparisons); only guaranteed floors (deterministic, or at a stated "
                              "confidence) are pass/fail checks.",
                  headline=res["verdict"], records=[rec], lead=accuracy_line(res))
    for r in res["comparisons"]:
        if r["guarantee"] != "none":
            cmp = Comparison(*(float(r[k]) for k in ("value", "bound_value", "difference", "stderr", "z", "z_crit",
                                                     "alpha")), int(r["m"]), r["status"], paired=r["paired"])
            sec.add_comparison(f"attack MSE >= {r['bound']}", r["attack"], cmp)
    sec.tables["attacks"] = res["attacks"]
    sec.table_notes["attacks"] = ATTACKS_NOTE
    sec.tables["bounds"] = [{"bound": k, "value": v["value"], "s.e.": v["stderr"], "guarantee": guarantee_label(v),
                             "assumptions": v["assumptions"]} for k, v in res["bounds"].items()]
    sec.table_notes["bounds"] = BOUNDS_NOTE
    sec.tables["comparisons"] = [{k: r[k] for k in ("attack", "bound", "guarantee", "difference", "stderr", "z",
                                                    "status", "paired")} for r in res["comparisons"]]
    sec.table_notes["comparisons"] = COMPARISONS_NOTE
    if res["warnings"]:
        sec.tables["warnings"] = [{"warning": w} for w in res["warnings"]]
    sec.data.update({"accuracy": res["accuracy"], "conditional_entropy": res["conditional_entropy"]})
    return sec


#: no runner here: a check is run, and recorded, by :func:`empirics.experiments.check_defense_record`
#: (the library object it checks — a module, a factory, weights — is not in the configuration, only
#: its content hash; and that function needs this module's classes, so a runner here would make a
#: cycle)
KIND = Kind(config=CheckDefenseConfig, result=CheckDefenseResult)
