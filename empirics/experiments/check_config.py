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

__all__ = ["CheckDefenseConfig", "CheckDefenseResult", "file_hash", "CHECK_ATTACKS", "PRIOR_DATASET", "SPLIT_DATASET"]

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
    ``n_train`` / ``n_test`` apply to a user's Gaussian-mixture prior only.
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
    """What check-defense found: attacks, bounds, the comparisons between them, warnings, verdict."""

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


register_kind(CheckDefenseConfig, CheckDefenseResult)
