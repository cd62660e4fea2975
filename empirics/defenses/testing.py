"""The defense contract as a library: what every defense must satisfy, checked for the package's own
and for yours (as scikit-learn's ``check_estimator`` / ``parametrize_with_checks``).

A defense is given as a *factory* ``make(strength) -> Defense`` — e.g. ``lambda s: MyNoise(sigma=s)``
— so that a check can build it switched off (strength 0), switched on (``strength``, default 0.5)
and fresh for every run (defenses hold state).  The contract, one check each (:data:`CHECKS`):

``is_a_defense``
    ``make(s)`` is a :class:`~empirics.defenses.Defense` with a ``name``; its ``strength`` is 0 at
    strength 0 and positive when switched on; ``config()`` is plain data.
``rejects_bad_strength``
    ``make(-1.0)`` raises ``ValueError`` (a strength comes from user input: specs, the command line).
``off_switch``
    At strength 0, training is bit-identical to training without it under the same seed — in a
    user's own loop through :func:`~empirics.defenses.defend` and in :func:`empirics.training.train`
    — and draws no random numbers (the loop's generator and torch's global one are untouched).
``switched_on_differs``
    Switched on, the trained weights differ from training without it.
``randomness_from_the_loop``
    Switched on, it draws random numbers only from the generators it is given (``Step.generator``,
    ``transform_features(generator=)``, its own seeded ones), never from torch's global generator.
``seeded_determinism``
    Switched on, two runs with the same seed give bit-identical weights and deployed features.
``deployed_features``
    In eval mode the defended encoder gives one finite row per input, the same for the same seed;
    evaluating is not a training step and does not move the training generator.
``state_round_trip``
    Interrupted after an epoch and resumed from the checkpoint (weights, optimizer,
    ``defended.defense_state()``, the loop's generator) into fresh objects, training ends with the
    same weights as without the interruption: ``state_dict`` holds everything the defense carries.

:func:`check_defense_contract` runs them all and raises :class:`DefenseContractError` naming every
contract broken; :func:`parametrize_with_defense_checks` makes one pytest test per defense and
check.  The loop is the package's small synthetic setting (a 3-class Gaussian mixture in d = 8,
96 training points, a two-layer encoder with 6 features; two epochs, CPU), so a check takes well
under a second; give ``data=`` and ``nets=`` (:class:`DefenseCase`) for a defense that needs
images.  Comparisons are bitwise (``torch.equal``): the same operations in the same order give the
same bits on a CPU.

Examples
--------
>>> from empirics.defenses import GaussianNoise
>>> check_defense_contract(lambda s: GaussianNoise(sigma=s))
['is_a_defense', 'rejects_bad_strength', 'off_switch', 'switched_on_differs', 'randomness_from_the_loop', 'seeded_determinism', 'deployed_features', 'state_round_trip']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..data import synthetic_mixture
from ..models import SplitModel, make_model
from ..training import train
from .base import Defense, make_defense
from .defended import defend

__all__ = ["DefenseCase", "DefenseContractError", "CHECKS", "check_defense_contract", "parametrize_with_defense_checks",
           "run_check", "builtin_cases"]


class DefenseContractError(AssertionError):
    """A defense broke the contract; the message names each contract broken and what was seen."""


def _small_data():
    d = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)
    return (d.train.x, d.train.y), (d.test.x, d.test.y)


def _small_nets(seed: int):
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=seed)
    return m.encoder, m.head


@dataclass(frozen=True)
class DefenseCase:
    """One defense to check: its factory and the setting the checks train it in.

    Parameters
    ----------
    make : callable float -> Defense
        Builds the defense at a strength (0 = off).
    strength : float
        The strength "switched on" (default 0.5).
    with_defenses : tuple
        Defenses composed *before* it in every run, with and without it (e.g. ``("noise:sigma=0.05",)``
        for a defense that needs noisy features, as CEM does).
    name : str
        Label in test ids and messages (default: the defense's ``name``).
    data : ((x, y), (x_test, y_test)), optional
        Training and held-out tensors (default: the synthetic mixture).
    nets : callable seed -> (encoder, head), optional
        Fresh networks for a seed (default: the synthetic preset).
    epochs, batch_size, lr : training settings of every run.
    """

    make: Callable[[float], Defense]
    strength: float = 0.5
    with_defenses: tuple = ()
    name: str = ""
    data: Any = None
    nets: Callable | None = None
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-2

    def label(self) -> str:
        if self.name:
            return self.name
        try:
            return self.make(0.0).name
        except Exception:  # a broken factory: its checks say why
            return getattr(self.make, "__name__", "defense")

    def tensors(self):
        return self.data if self.data is not None else _small_data()

    def build_nets(self, seed: int = 0):
        return (self.nets or _small_nets)(seed)


def _case(obj) -> DefenseCase:
    if isinstance(obj, DefenseCase):
        return obj
    if callable(obj) and not isinstance(obj, Defense):
        return DefenseCase(make=obj)
    raise TypeError(f"defense: expected a factory strength -> Defense or a DefenseCase, got {type(obj).__name__} "
                    "(a Defense object holds state: give a factory, e.g. lambda s: MyDefense(sigma=s))")


def _extra(case: DefenseCase) -> list:
    """Fresh instances of the composed defenses (strings stay specs; objects are deep-copied)."""
    return [d if isinstance(d, str) else copy.deepcopy(d) for d in case.with_defenses]


def _weights(*modules) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def _loop(case: DefenseCase, defenses, *, seed: int = 0, epochs: int | None = None, wrap: bool = True,
          stop_after: int | None = None, resume: dict | None = None):
    """A user's plain training loop (Adam, batches in the order of their own generator); with ``wrap`` the
    defenses are attached by ``defend``.  Returns (weights, defended, state after ``stop_after`` epochs)."""
    (x, y), _ = case.tensors()
    encoder, head = case.build_nets(seed)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=case.lr)
    defended = defend(encoder=encoder, defenses=defenses, optimizer=opt, head=head, data=(x, y), seed=seed) \
        if wrap else None
    order = torch.Generator().manual_seed(seed)
    start = 0
    if resume is not None:
        encoder.load_state_dict(resume["encoder"])
        head.load_state_dict(resume["head"])
        opt.load_state_dict(resume["optimizer"])
        defended.load_defense_state(resume["defenses"])
        order.set_state(resume["order"])
        start = resume["epoch"]
    saved = None
    for epoch in range(start, epochs or case.epochs):
        if stop_after is not None and epoch == stop_after:
            saved = {"encoder": copy.deepcopy(encoder.state_dict()), "head": copy.deepcopy(head.state_dict()),
                     "optimizer": copy.deepcopy(opt.state_dict()), "defenses": copy.deepcopy(defended.defense_state()),
                     "order": order.get_state(), "epoch": epoch}
        encoder.train()
        head.train()
        perm = torch.randperm(len(x), generator=order)
        for b in range(0, len(x), case.batch_size):
            xb, yb = x[perm[b:b + case.batch_size]], y[perm[b:b + case.batch_size]]
            z = defended(xb) if wrap else encoder(xb)
            loss = F.cross_entropy(head(z), yb)
            if wrap:
                loss = loss + defended.loss(yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if wrap:
                defended.step()
        if wrap:
            defended.epoch_end()
    return _weights(encoder, head), defended, saved


def _package_train(case: DefenseCase, defenses, seed: int = 0) -> torch.Tensor:
    (x, y), _ = case.tensors()
    encoder, head = case.build_nets(seed)
    model = SplitModel(encoder, head, input_shape=tuple(x.shape[1:]))
    train(model, (x, y), epochs=case.epochs, batch_size=case.batch_size, lr=case.lr, defenses=defenses, seed=seed,
          device="cpu", progress=False)
    return _weights(model)


class _Broken(Exception):
    pass


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise _Broken(what)


# ----------------------------------------------------------------------------- the checks

def check_is_a_defense(case: DefenseCase) -> None:
    """``make(s)`` is a Defense with a name; strength 0 off, positive on; config() plain data."""
    off, on = case.make(0.0), case.make(case.strength)
    _expect(isinstance(off, Defense) and isinstance(on, Defense),
            f"make(s) returned {type(off).__name__}, not an empirics.defenses.Defense")
    _expect(bool(getattr(type(on), "name", "")) and type(on).name != "none", "the class has no `name`")
    _expect(float(off.strength) == 0.0, f"make(0).strength is {off.strength!r}, not 0")
    _expect(float(on.strength) > 0.0, f"make({case.strength}).strength is {on.strength!r}, not > 0")
    cfg = on.config()
    _expect(isinstance(cfg, dict) and all(isinstance(k, str) for k in cfg), "config() is not a dict of names")


def check_rejects_bad_strength(case: DefenseCase) -> None:
    """``make(-1.0)`` raises ValueError."""
    try:
        case.make(-1.0)
    except ValueError:
        return
    except Exception as exc:
        raise _Broken(f"make(-1.0) raised {type(exc).__name__} ({exc}), not ValueError") from None
    raise _Broken("make(-1.0) was accepted: a negative strength must raise ValueError")


def check_off_switch(case: DefenseCase) -> None:
    """At strength 0 training equals training without it, bit for bit, and draws no random numbers."""
    base, base_def, _ = _loop(case, _extra(case))
    rng = torch.get_rng_state()
    off, off_def, _ = _loop(case, _extra(case) + [case.make(0.0)])
    _expect(torch.equal(torch.get_rng_state(), rng), "at strength 0 it drew from torch's global generator")
    _expect(torch.equal(off, base), "at strength 0, training through defend() gives other weights than training "
                                    "without it (same seed)")
    g0, g1 = base_def.generator, off_def.generator
    _expect((g0 is None) == (g1 is None) and (g0 is None or torch.equal(g0.get_state(), g1.get_state())),
            "at strength 0 it drew from the loop's generator")
    _expect(torch.equal(_package_train(case, _extra(case) + [case.make(0.0)]), _package_train(case, _extra(case))),
            "at strength 0, empirics.training.train gives other weights than without it")


def check_switched_on_differs(case: DefenseCase) -> None:
    """Switched on, the trained weights differ from training without it."""
    base, _, _ = _loop(case, _extra(case))
    on, _, _ = _loop(case, _extra(case) + [case.make(case.strength)])
    _expect(not torch.equal(on, base), f"at strength {case.strength} the weights equal those without it: it does "
                                       "nothing")


def check_randomness_from_the_loop(case: DefenseCase) -> None:
    """Switched on, it never draws from torch's global generator."""
    _loop(case, _extra(case))  # warm-up: lazy initialisation outside the comparison
    rng = torch.get_rng_state()
    _loop(case, _extra(case) + [case.make(case.strength)])
    _expect(torch.equal(torch.get_rng_state(), rng), "it drew from torch's global generator (use the generator "
                                                      "it is given, or one seeded from its `seed`)")


def check_seeded_determinism(case: DefenseCase) -> None:
    """Two runs with the same seed give the same weights and deployed features."""
    (x, y), (xt, _) = case.tensors()
    runs = []
    for _ in range(2):
        torch.manual_seed(12345)  # the same global state both times: only the defense's own seeding is tested
        w, defended, _ = _loop(case, _extra(case) + [case.make(case.strength)])
        defended.eval()
        with torch.no_grad():
            runs.append((w, defended(xt)))
    _expect(torch.equal(runs[0][0], runs[1][0]), "two runs with the same seed give different weights")
    _expect(torch.equal(runs[0][1], runs[1][1]), "two runs with the same seed give different deployed features")


def check_deployed_features(case: DefenseCase) -> None:
    """Eval mode: one finite row per input, reproducible for the seed; not a training step."""
    (x, y), (xt, _) = case.tensors()
    _, defended, _ = _loop(case, _extra(case) + [case.make(case.strength)])
    steps, gen = defended.steps, defended.generator
    state = None if gen is None else gen.get_state()
    defended.eval()
    with torch.no_grad():
        z = defended(xt)
    _expect(isinstance(z, torch.Tensor) and z.ndim >= 1 and z.shape[0] == len(xt),
            f"eval-mode features of {len(xt)} inputs have shape {tuple(getattr(z, 'shape', ()))}")
    _expect(bool(torch.isfinite(z).all()), "eval-mode features contain NaN or inf")
    _expect(defended.steps == steps, "an eval-mode call counted as a training step")
    _expect(state is None or torch.equal(defended.generator.get_state(), state),
            "an eval-mode call moved the training generator")


def check_state_round_trip(case: DefenseCase) -> None:
    """Interrupted after an epoch and resumed from its state, training ends with the same weights."""
    epochs = max(case.epochs, 2)
    full, _, saved = _loop(case, _extra(case) + [case.make(case.strength)], epochs=epochs, stop_after=1)
    resumed, _, _ = _loop(case, _extra(case) + [case.make(case.strength)], epochs=epochs, resume=saved)
    _expect(torch.equal(full, resumed), "resumed from defended.defense_state() after epoch 1, training ends with "
                                        "other weights: state_dict() / load_state_dict() miss part of its state")


#: the contract: name -> check (each raises on a broken contract; its docstring says what must hold)
CHECKS: dict[str, Callable[[DefenseCase], None]] = {
    "is_a_defense": check_is_a_defense,
    "rejects_bad_strength": check_rejects_bad_strength,
    "off_switch": check_off_switch,
    "switched_on_differs": check_switched_on_differs,
    "randomness_from_the_loop": check_randomness_from_the_loop,
    "seeded_determinism": check_seeded_determinism,
    "deployed_features": check_deployed_features,
    "state_round_trip": check_state_round_trip,
}


def run_check(name: str, defense) -> None:
    """Run one check of the contract on ``defense`` (a factory or :class:`DefenseCase`).

    Parameters
    ----------
    name : str
        A key of :data:`CHECKS`.
    defense : callable or DefenseCase
        The defense.

    Raises
    ------
    DefenseContractError
        Naming the contract and what was seen.
    """
    case = _case(defense)
    try:
        CHECKS[name](case)
    except _Broken as exc:
        raise DefenseContractError(f"{case.label()}: contract {name!r} broken — {exc}") from None
    except DefenseContractError:
        raise
    except Exception as exc:
        raise DefenseContractError(f"{case.label()}: contract {name!r} broken — the check raised "
                                   f"{type(exc).__name__}: {exc}") from exc


def check_defense_contract(make_defense, **case) -> list[str]:
    """Check a defense against every contract of :data:`CHECKS`.

    Parameters
    ----------
    make_defense : callable float -> Defense, or DefenseCase
        The defense's factory (``lambda s: MyDefense(sigma=s)``).
    **case
        :class:`DefenseCase` settings (``strength``, ``with_defenses``, ``data``, ``nets`` ...).

    Returns
    -------
    list of str
        The contracts checked (all passed).

    Raises
    ------
    DefenseContractError
        Listing every contract broken, one per line.
    """
    c = make_defense if isinstance(make_defense, DefenseCase) else DefenseCase(make=make_defense, **case)
    broken = []
    for name in CHECKS:
        try:
            run_check(name, c)
        except DefenseContractError as exc:
            broken.append(str(exc))
    if broken:
        raise DefenseContractError(f"{len(broken)} of {len(CHECKS)} contracts broken:\n" + "\n".join(broken))
    return list(CHECKS)


def parametrize_with_defense_checks(defenses, *, checks=None):
    """A pytest decorator: one test per (defense, contract), as scikit-learn's ``parametrize_with_checks``.

    The decorated test takes ``defense`` and ``check`` and calls ``check(defense)``::

        @parametrize_with_defense_checks([lambda s: MyDefense(sigma=s)])
        def test_my_defense(defense, check):
            check(defense)

    Parameters
    ----------
    defenses : sequence of (callable float -> Defense) or DefenseCase
        The defenses.
    checks : sequence of str, optional
        A subset of :data:`CHECKS` (default: all).

    Returns
    -------
    pytest.MarkDecorator
    """
    import pytest  # deferred: a test helper; the package does not depend on pytest

    params = []
    for d in defenses:
        case = _case(d)
        for name in checks or CHECKS:
            if name not in CHECKS:
                raise ValueError(f"checks: expected names from {list(CHECKS)}, got {name!r}")
            params.append(pytest.param(case, _Check(name), id=f"{case.label()}-{name}"))
    return pytest.mark.parametrize("defense, check", params)


@dataclass(frozen=True)
class _Check:
    """A named check, callable on a defense (what parametrize_with_defense_checks hands a test)."""

    name: str
    doc: str = field(default="", compare=False)

    def __call__(self, defense) -> None:
        run_check(self.name, defense)

    def __repr__(self) -> str:
        return self.name


def builtin_cases() -> list[DefenseCase]:
    """The package's own defenses as :class:`DefenseCase` s — one per registered name (a test holds
    this list to :func:`~empirics.defenses.available_defenses`), plus CEM's released-code objective.

    Returns
    -------
    list of DefenseCase
    """
    (x, y), (xt, yt) = _small_data()
    public = (xt, yt)  # tl_freeze pre-trains on a public split, here the held-out points

    def spec(name, key, **kw):
        return lambda s: make_defense(name, **{key: s}, **kw)
    noisy = ("noise:sigma=0.05",)  # CEM's Theorem 2 is stated for noisy features
    return [
        DefenseCase(spec("noise", "sigma"), name="noise"),
        DefenseCase(spec("bottleneck", "drop"), name="bottleneck"),
        DefenseCase(spec("dropout", "p"), strength=0.3, name="dropout"),
        DefenseCase(spec("nopeek", "alpha"), name="nopeek"),
        DefenseCase(spec("arl", "alpha"), name="arl"),
        DefenseCase(spec("mixcon", "lam"), strength=1.0, name="mixcon"),
        DefenseCase(spec("unicon", "lam"), strength=1.0, name="unicon"),
        DefenseCase(lambda s: make_defense("tl_freeze", freeze=int(s), public_data=public, pretrain_epochs=1),
                    strength=1, name="tl_freeze"),
        DefenseCase(spec("cem", "lam", k_per_class=2), strength=1.0, with_defenses=noisy, name="cem"),
        DefenseCase(spec("cem", "lam", k_per_class=2, feature_source="cached"), strength=1.0, with_defenses=noisy,
                    name="cem-cached"),
        DefenseCase(spec("cem", "lam", objective="code", clusters_per_class=2, var_threshold=0), strength=50.0,
                    with_defenses=noisy, name="cem-code"),
    ]
