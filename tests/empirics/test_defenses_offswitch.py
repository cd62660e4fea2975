"""The off-switch property of every defense (Opacus-style): at strength 0, training is
bit-identical to training without the defense under the same seed; switched on, it differs.
CEM with λ = 0 composed with a base defense ≡ the base defense alone."""

import pytest
import torch

from empirics.data import digits, synthetic_mixture
from empirics.defenses import make_defense
from empirics.models import make_model
from empirics.training import train

DATA = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)
IMG = digits()

# The per-defense off-switch ("strength 0 is bit-identical, on differs") is the contract of
# empirics.defenses.testing, checked for every registered defense in test_defenses_contract.py (through
# defend() in a plain loop and through empirics.training.train); what stays here is CEM-specific.


def _train(defenses, seed=0):
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=seed)
    train(m, DATA.train, epochs=2, batch_size=32, lr=1e-2, defenses=defenses, seed=seed, device="cpu",
          progress=False)
    return torch.cat([p.detach().flatten() for p in m.parameters()])


@pytest.mark.parametrize("base", ["noise", "nopeek", "arl", "dropout"])
def test_cem_lambda_zero_equals_its_base_defense(base):
    kw = {"noise": dict(sigma=0.05), "nopeek": dict(alpha=0.3), "arl": dict(alpha=0.3),
          "dropout": dict(p=0.2)}[base]
    a = _train([make_defense(base, **kw)])
    b = _train([make_defense(base, **kw), make_defense("cem", lam=0.0, k_per_class=2)])
    assert torch.equal(a, b)


def test_cem_trains_on_images_full_and_diag():
    """CEM composed with noise on the digits CNN: finite loss, L_C recorded, both covariance types."""
    for cov in ("full", "diag"):
        m = make_model("digits", num_classes=10, seed=0)
        cem = make_defense("cem", lam=1.0, covariance=cov)
        x, y = IMG.train.x[:300], IMG.train.y[:300]
        train(m, (x, y), epochs=1, batch_size=64, defenses=[make_defense("noise", sigma=0.1), cem],
              device="cpu", progress=False)
        assert cem.last_loss is not None and cem.last_loss == cem.last_loss


@pytest.mark.parametrize("name, kw, match", [
    ("noise", dict(sigma=-0.1), "sigma"), ("dropout", dict(p=1.0), "p"), ("bottleneck", dict(drop=1.2), "drop"),
    ("nopeek", dict(alpha=-1), "alpha"), ("arl", dict(alpha=float("nan")), "alpha"),
    ("mixcon", dict(lam=-1), "lam"), ("unicon", dict(lam="x"), "lam"), ("tl_freeze", dict(freeze=-1), "freeze"),
    ("nosuch", dict(), "defense"),
])
def test_bad_strengths_raise(name, kw, match):
    with pytest.raises(ValueError, match=match):
        make_defense(name, **kw)


def test_tl_freeze_freezes_first_layers():
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    first = [p.detach().clone() for p in m.encoder[0].parameters()]
    d = make_defense("tl_freeze", freeze=1, public_data=(DATA.test.x, DATA.test.y), pretrain_epochs=1)
    train(m, DATA.train, epochs=1, batch_size=32, defenses=[d], device="cpu", progress=False)
    after = list(m.encoder[0].parameters())
    assert all(not p.requires_grad for p in after)
    # pre-training moved them, fine-tuning did not: compare with a pre-trained-only copy
    m2 = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    make_defense("tl_freeze", freeze=1, public_data=(DATA.test.x, DATA.test.y), pretrain_epochs=1)._pretrain(m2)
    assert all(torch.equal(a, b) for a, b in zip(after, m2.encoder[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(after, first))


def test_cem_cached_features_reuse_previous_epoch(monkeypatch):
    """feature_source='cached': from epoch 2 on, the estimate uses the features of the previous
    epoch's steps (no extra encoder pass); epoch 1 still runs the pass."""
    from empirics.defenses import CEM
    passes = []
    real = CEM._features

    def counting(self, ctx):
        passes.append(ctx.epoch)
        return real(self, ctx)
    monkeypatch.setattr(CEM, "_features", counting)
    cem = make_defense("cem", lam=0.1, k_per_class=2, feature_source="cached")
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    train(m, DATA.train, epochs=3, batch_size=32, defenses=[make_defense("noise", sigma=0.1), cem], device="cpu",
          progress=False)
    assert passes == [0] and cem.fit is not None


def test_tl_freeze_too_many_layers():
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    with pytest.raises(ValueError, match="freeze"):
        train(m, DATA.train, epochs=1, defenses=[make_defense("tl_freeze", freeze=9)], device="cpu", progress=False)
