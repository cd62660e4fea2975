"""Split-model presets: shapes, the feature path through defenses, decoders for every preset."""

import pytest
import torch

from empirics.attacks import DecoderAttack
from empirics.data import ArrayDataset
from empirics.defenses.noise import GaussianNoise
from empirics.models import PRESET_INPUT_SHAPES, SplitModel, make_model

torch.set_num_threads(1)

FEATURES = {"digits": (8, 8, 8), "lfw": (8, 13, 13), "mnist1d": (32,), "vgg11_bn": (8, 8, 8),
            "resnet20": (8, 32, 32)}


@pytest.mark.parametrize("preset", sorted(FEATURES))
def test_preset_shapes_and_sigmoid_bottleneck(preset):
    m = make_model(preset, num_classes=10).eval()
    x = torch.rand(2, *PRESET_INPUT_SHAPES[preset])
    z = m.encode(x).detach()
    assert tuple(z.shape[1:]) == FEATURES[preset] == m.feature_shape()
    assert float(z.min()) >= 0 and float(z.max()) <= 1  # sigmoid bottleneck
    assert m(x).shape == (2, 10)


def test_vgg_paper_cut_has_512_features():
    assert torch.tensor(make_model("vgg11_bn", num_classes=10).feature_shape()).prod() == 512


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(5)
    s = torch.get_rng_state()
    a, b = make_model("digits", num_classes=10, seed=3), make_model("digits", num_classes=10, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(s, torch.get_rng_state())


def test_client_features_chain_defenses_in_order():
    enc, head = torch.nn.Identity(), torch.nn.Linear(3, 2)

    class Scale(GaussianNoise):
        name = "scale-test"

        def __init__(self, f):
            self.f = f

        def transform_features(self, z, *, training, generator=None):
            return z * self.f + (1.0 if training else 0.0)

    m = SplitModel(enc, head, defenses=[Scale(2.0), Scale(3.0)])
    z = torch.ones(1, 3)
    assert torch.equal(m.client_features(z), z * 6)
    assert torch.equal(m.client_features(z, training=True), (z * 2 + 1) * 3 + 1)
    m.train()
    assert torch.allclose(m(z), head((z * 2 + 1) * 3 + 1))


@pytest.mark.parametrize("preset", ["lfw", "mnist1d", "digits"])
def test_decoder_attack_builds_for_every_small_preset(preset):
    m = make_model(preset, num_classes=2)
    shape = PRESET_INPUT_SHAPES[preset]
    aux = ArrayDataset(torch.rand(16, *shape), torch.zeros(16))
    att = DecoderAttack(epochs=1, width=16, hidden=32).fit(m, aux, device="cpu", progress=False)
    out = att.reconstruct(att.observe(m, aux.x[:3]))
    assert tuple(out.shape) == (3, *shape) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="preset"):
        make_model("alexnet", num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        make_model("digits", num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        make_model("synthetic", num_classes=2)
    with pytest.raises(ValueError, match="encoder"):
        SplitModel("enc", torch.nn.Linear(2, 2))
