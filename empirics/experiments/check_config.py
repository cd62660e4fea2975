"""check-defense as data: its configuration (identity = resume key) and its result.  Torch-free.

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

from ..runs import AttackSpec, Config, Result, register_kind

__all__ = ["CheckDefenseConfig", "CheckDefenseResult", "file_hash", "min_mc_draws", "check_mc_settings", "CHECK_ATTACKS",
           "PRIOR_DATASET", "SPLIT_DATASET", "ALPHA"]

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

    >>> edgeworth_draws(5e-4, 3.0)
    1221
    """
    from scipy.stats import norm
    z = float(norm.isf(alpha_each))
    return int(math.ceil((abs(skewness) * (z * z - 1) * float(norm.pdf(z)) / (3 * alpha_each)) ** 2))


def min_mc_draws(alpha: float = ALPHA) -> int:
    """The fewest Monte-Carlo draws check-defense accepts at family-wise level ``alpha``.

    Of the Monte-Carlo quantities behind a confidence floor, H(x) enters through a limit that holds
    at any n (:func:`theory.mixture_entropy_lower_limit`); the departure η² of an encoder outside
    the rounding model enters through a one-sided CLT limit at level α/2, which needs
    :func:`edgeworth_draws` for skewness up to :data:`SKEW_MAX` (the run reports the measured
    skewness and warns when it asks for more), and never fewer than :data:`N_MC_FLOOR`.

    >>> min_mc_draws(1e-3), min_mc_draws(1e-6)
    (2000, 13576)
    """
    return max(N_MC_FLOOR, edgeworth_draws(alpha / MC_QUANTITIES, SKEW_MAX))


def check_mc_settings(n_mc, alpha) -> None:
    """``alpha`` in (0, 1) and ``n_mc`` ≥ :func:`min_mc_draws` (one ValueError naming the argument)."""
    ok = not isinstance(alpha, bool) and isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0 < alpha < 1
    if not ok:
        raise ValueError(f"alpha: expected the family-wise level of the confidence floors, a number in (0, 1), "
                         f"got {alpha!r}")
    _check_count(n_mc, "n_mc")
    need = min_mc_draws(alpha)
    if n_mc < need:
        raise ValueError(f"n_mc: expected at least {need} Monte-Carlo draws (confidence floors at family-wise "
                         f"α = {alpha:g} need them for their CLT limit to mean what it says), got {n_mc}")


def file_hash(path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:HASH_DIGITS]


def _check_sigma(v, name, *, positive: bool):
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if not ok or not (v > 0 if positive else v >= 0):
        need = "a positive finite number (Theorem 2 needs noise)" if positive else "a finite number >= 0"
        raise ValueError(f"{name}: expected {need}, got {v!r}")


def _check_count(v, name):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class CheckDefenseConfig(Config):
    """Everything that decides a check-defense result (see the module docstring for the encoder's identity).

    ``train_encoder`` False: the encoder is checked exactly as given (``--weights``, a module
    instance, or one without trainable parameters); ``head`` False: no head, no accuracy.
    ``n_train`` / ``n_test`` apply to a user's Gaussian-mixture prior only.  ``alpha`` is the
    family-wise level of the confidence floors (they hold with probability ≥ 1 − alpha);
    ``n_mc`` ≥ :func:`min_mc_draws` (alpha).
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

    def __post_init__(self):
        if self.dataset not in (PRIOR_DATASET, SPLIT_DATASET):
            from ..registry import spec
            s = spec(self.dataset)
            if "check-defense" not in s.commands and not s.description.startswith("in-memory"):
                raise ValueError(f"dataset: check-defense takes {sorted(_check_names())}, got {self.dataset!r}")
            object.__setattr__(self, "dataset", s.name)
        elif not self.dataset_hash:
            raise ValueError(f"dataset_hash: a {self.dataset} needs its content hash")
        _check_sigma(self.noise, "noise", positive=True)
        _check_sigma(self.encoder_noise, "encoder_noise", positive=False)
        for n in ("epochs", "fisher_samples", "k_per_class", "n_mc", "n_train", "n_test"):
            _check_count(getattr(self, n), n)
        check_mc_settings(self.n_mc, self.alpha)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}")
        specs = tuple(AttackSpec.parse(a) for a in self.attacks)
        bad = [a.name for a in specs if a.name not in CHECK_ATTACKS]
        if bad:
            raise ValueError(f"attacks: check-defense runs {list(CHECK_ATTACKS)} (and bayes by itself), got {bad}")
        object.__setattr__(self, "attacks", specs)

    def label(self) -> str:
        return f"{self.encoder} on {self.dataset}, σ = {self.noise:g}"


def _check_names():
    from ..registry import names
    return names("check-defense")


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


register_kind(CheckDefenseConfig, CheckDefenseResult)
