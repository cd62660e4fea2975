"""The defense contract (``empirics.defenses.testing``) on every defense of the package, and on defenses
written the way a user would — a correct one passes, and each deliberately broken one fails with the
contract it breaks named.  (These replace the per-defense off-switch tables of
``test_defenses_offswitch.py`` and ``test_defend_offswitch.py``: the off-switch now runs through both
``defend()`` in a plain loop and ``empirics.training.train`` for every defense.)"""

import pytest
import torch

from empirics.defenses import Defense, available_defenses, make_defense
from empirics.defenses.testing import (CHECKS, DefenseCase, DefenseContractError, builtin_cases, check_defense_contract,
                                       parametrize_with_defense_checks, run_check)

torch.set_num_threads(1)


def test_every_registered_defense_has_a_case():
    names = {c.make(0.0).name for c in builtin_cases()}
    assert names == set(available_defenses())


@parametrize_with_defense_checks(builtin_cases())
def test_package_defenses_keep_the_contract(defense, check):
    check(defense)


# ----------------------------------------------------------------------------- a user's defenses

class Shrink(Defense):
    """Scale the features by (1 - shrink): a user's defense, written as CONTRIBUTING says."""

    name = "shrink-test"

    def __init__(self, shrink=0.0):
        if not 0 <= float(shrink) < 1:
            raise ValueError(f"shrink: expected a number in [0, 1), got {shrink!r}")
        self.shrink = float(shrink)

    @property
    def strength(self):
        return self.shrink

    def transform_features(self, z, *, training, generator=None):
        return z * (1 - self.shrink)


class NoisyAlways(Shrink):
    """Broken: draws noise even when switched off (multiplied by 0, the weights stay equal — the stream moves)."""

    def transform_features(self, z, *, training, generator=None):
        return z + self.shrink * torch.randn(z.shape, generator=generator)


class GlobalRandom(Shrink):
    """Broken: draws from torch's global generator."""

    def transform_features(self, z, *, training, generator=None):
        return z + self.shrink * torch.randn(z.shape) if self.shrink else z


class Forgetful(Shrink):
    """Broken: a running scale updated every step that state_dict() does not save."""

    def __init__(self, shrink=0.0):
        super().__init__(shrink)
        self.scale = 1.0

    def transform_features(self, z, *, training, generator=None):
        return z * self.scale * (1 - self.shrink)

    def after_step(self, step):
        if self.shrink:
            self.scale *= 0.9


class Unchecked(Shrink):
    """Broken: accepts a negative strength."""

    def __init__(self, shrink=0.0):
        self.shrink = float(shrink)


class NotOff(Shrink):
    """Broken: its loss term is there at strength 0."""

    def extra_loss(self, step):
        return 1e-3 * step.z_sent.pow(2).mean()


@parametrize_with_defense_checks([lambda s: Shrink(shrink=s)])
def test_a_users_defense_passes(defense, check):
    check(defense)


@pytest.mark.parametrize("cls, broken", [
    (NoisyAlways, "off_switch"),
    (GlobalRandom, "randomness_from_the_loop"),
    (Forgetful, "state_round_trip"),
    (Unchecked, "rejects_bad_strength"),
    (NotOff, "off_switch"),
])
def test_a_broken_defense_fails_naming_the_contract(cls, broken):
    with pytest.raises(DefenseContractError, match=f"contract '{broken}' broken") as exc:
        check_defense_contract(lambda s: cls(shrink=s))
    assert exc.value.args[0].startswith(("1 of", "2 of"))  # the others hold: each check tests its own contract
    run_check("is_a_defense", lambda s: cls(shrink=s))  # the rest of the class is fine


def test_helpers_refuse_bad_input():
    with pytest.raises(TypeError, match="give a factory"):
        run_check("off_switch", Shrink(0.5))
    with pytest.raises(ValueError, match="checks"):
        parametrize_with_defense_checks([lambda s: Shrink(shrink=s)], checks=["nope"])
    assert set(CHECKS) == {"is_a_defense", "rejects_bad_strength", "off_switch", "switched_on_differs",
                           "randomness_from_the_loop", "seeded_determinism", "deployed_features", "state_round_trip"}


def test_a_case_composes_its_base_defenses_before_it():
    """CEM is checked with noise before it (with_defenses): switched off, noise + CEM(0) = noise alone."""
    case = DefenseCase(lambda s: make_defense("cem", lam=s, k_per_class=2), strength=1.0,
                       with_defenses=("noise:sigma=0.05",))
    run_check("off_switch", case)
    run_check("switched_on_differs", case)
