"""Defenses in a user's own loop (``empirics.defenses.defend``): the off-switch through the wrapper
for every registered defense, and the package's ``train`` = the plain loop with the wrapper.

The "plain loop" is what a user writes: their encoder and head, their optimizer, their batches;
with the wrapper the loop gains ``defended(x)``, ``+ defended.loss(y)``, ``defended.step()`` and
``defended.epoch_end()``.  Comparisons are bitwise (``torch.equal``) on CPU: the same operations in
the same order must give the same bits; a defense at strength 0 adds nothing and draws nothing.
"""

import pytest
import torch
import torch.nn.functional as F

from empirics.data import synthetic_mixture
from empirics.defenses import available_defenses, defend, make_defense
from empirics.defenses.testing import builtin_cases
from empirics.models import make_model
from empirics.seeding import torch_generator
from empirics.training import train

torch.set_num_threads(1)
DATA = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)

# The per-defense off-switch through the wrapper is the contract of empirics.defenses.testing, checked for
# every registered defense in test_defenses_contract.py; the case list is its builtin_cases().
CASES = {c.name: c for c in builtin_cases()}


def _nets(seed=0):
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=seed)
    return m.encoder, m.head


def _weights(*modules):
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def user_loop(specs, *, wrap=True, epochs=2, seed=0, batch_size=32):
    """A plain PyTorch loop; with ``wrap`` the defenses are attached by ``defend``."""
    encoder, head = _nets(seed)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    x, y = DATA.train.x, DATA.train.y
    if wrap:
        defended = defend(encoder=encoder, defenses=specs, optimizer=opt, head=head, data=(x, y), seed=seed)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        encoder.train()
        head.train()
        perm = torch.randperm(len(x), generator=order)
        for b in range(0, len(x), batch_size):
            xb, yb = x[perm[b:b + batch_size]], y[perm[b:b + batch_size]]
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
    return _weights(encoder, head)


PLAIN = None


def _plain():
    global PLAIN
    if PLAIN is None:
        PLAIN = user_loop([], wrap=False)
    return PLAIN


def test_every_defense_at_strength_zero_together_is_the_plain_loop():
    off = [CASES[name].make(0.0) for name in sorted(CASES)]
    assert {d.name for d in off} == set(available_defenses())
    assert torch.equal(user_loop(off), _plain())


def test_string_specs_equal_objects():
    a = user_loop(["noise:sigma=0.1", "nopeek:alpha=0.3"])
    b = user_loop([make_defense("noise", sigma=0.1), make_defense("nopeek", alpha=0.3)])
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- train = the plain loop

def loop_like_train(specs, *, seed=0, epochs=2, batch_size=32, lr=1e-2):
    """What a user writes to reproduce ``train``: same model seed, Adam, batch order from the
    "shuffle" stream; the wrapper's default generator is the "features" stream."""
    model = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    defended = defend(encoder=model.encoder, head=model.head, defenses=specs, optimizer=opt, data=DATA.train,
                      seed=seed)
    x, y = DATA.train.x, DATA.train.y
    order = torch_generator(seed, "shuffle")
    for _ in range(epochs):
        model.train()
        defended.train()
        perm = torch.randperm(len(x), generator=order)
        for b in range(0, len(x), batch_size):
            xb, yb = x[perm[b:b + batch_size]], y[perm[b:b + batch_size]]
            loss = F.cross_entropy(model.head(defended(xb)), yb) + defended.loss(yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            defended.step()
        defended.epoch_end()
    return _weights(model)


TRAIN_CASES = {
    "none": [],
    "noise+cem": ["noise:sigma=0.05", "cem:lam=1,k_per_class=2"],
    "noise+cem-cached": ["noise:sigma=0.05", "cem:lam=1,k_per_class=2,feature_source=cached"],
    "noise+cem-code": ["noise:sigma=0.05", "cem:lam=50,objective=code,clusters_per_class=2,var_threshold=0"],
    "noise+nopeek+cem": ["noise:sigma=0.05", "nopeek:alpha=0.3", "cem:lam=1,k_per_class=2"],
    "dropout+arl": ["dropout:p=0.2", "arl:alpha=0.5,seed=3"],
    "bottleneck+mixcon": ["bottleneck:drop=0.5", "mixcon:lam=1"],
    "unicon": ["unicon:lam=1"],
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_package_train_equals_the_plain_loop_with_the_wrapper(case):
    specs = TRAIN_CASES[case]
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    train(m, DATA.train, epochs=2, batch_size=32, lr=1e-2, defenses=specs, seed=0, device="cpu", progress=False)
    assert torch.equal(_weights(m), loop_like_train(specs))
