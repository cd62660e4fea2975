"""``empirics.defenses.defend`` in a user's loop: deployed features, the ARL adversary's
parameters, data forms, checkpoints, bad input and hooks out of order, CUDA and torch.compile."""

import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from empirics.attacks import DecoderAttack
from empirics.data import synthetic_mixture
from empirics.defenses import CEM, DefendedEncoder, GaussianNoise, defend, make_defense
from empirics.models import make_model
from empirics.seeding import torch_generator

torch.set_num_threads(1)
DATA = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)
X, Y = DATA.train.x, DATA.train.y


def _nets(seed=0):
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=seed)
    return m.encoder, m.head


def _weights(*modules):
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def _epoch(defended, head, opt, *, batch_size=32, order=None, labels=True):
    defended.train()
    head.train()
    perm = torch.randperm(len(X), generator=order) if order is not None else torch.arange(len(X))
    for b in range(0, len(X), batch_size):
        xb, yb = X[perm[b:b + batch_size]], Y[perm[b:b + batch_size]]
        loss = F.cross_entropy(head(defended(xb)), yb) + defended.loss(yb if labels else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        defended.step()
    defended.epoch_end()


def _setup(specs, *, data=(X, Y), seed=0, **kw):
    encoder, head = _nets(seed)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    return defend(encoder=encoder, defenses=specs, optimizer=opt, head=head, data=data, seed=seed, **kw), head, opt


# ----------------------------------------------------------------------------- what the module is

def test_forward_is_the_features_as_sent_training_and_deployed():
    """Training mode: encoder then noise from the "features" stream; eval mode: the deployed
    noise from the separate "eval" stream — equal to SplitModel.client_features of split_model()."""
    defended, head, _ = _setup(["noise:sigma=0.5"])
    assert isinstance(defended, nn.Module) and list(defended.parameters()) == list(defended.encoder.parameters())
    x = X[:5]
    with torch.no_grad():
        z = defended.encoder(x)
    g = torch_generator(0, "features")
    want = z + 0.5 * torch.randn(z.shape, generator=g)
    got = defended(x)
    assert torch.equal(got, want)
    defended.loss()  # the training step: nothing to add, no labels needed
    defended.eval()
    dep = defended(x)
    sm = defended.split_model(input_shape=(8,))
    assert torch.equal(dep, sm.client_features(x, training=False, generator=torch_generator(0, "eval")))
    with pytest.raises(ValueError, match="already called for this training step"):
        defended.loss()  # an eval-mode forward is not a step: loss() still refers to the first
    defended.train()
    with torch.no_grad():
        defended(x)  # nor is a forward without gradients
    defended.step()  # ... so the step is still the first one
    assert defended.steps == 1


@pytest.mark.parametrize("peek", ["eval", "no_grad"])
def test_evaluating_between_steps_does_not_change_training(peek):
    """Only training steps draw from the training generator: eval-mode calls, and training-mode
    calls without gradients, between steps leave the training noise, hence the weights, unchanged."""
    runs = []
    for look in (False, True):
        defended, head, opt = _setup(["noise:sigma=0.2", "dropout:p=0.2"])
        for _ in range(2):
            if look:
                if peek == "eval":
                    defended.eval()
                with torch.no_grad():
                    defended(X[:10])
            _epoch(defended, head, opt)
        runs.append(_weights(defended, head))
    assert torch.equal(*runs)


def test_arl_adversary_is_optimised_internally():
    """ARL's proxy decoder never reaches the user's optimizer nor defended.parameters(); it is
    trained by its own Adam inside step()."""
    defended, head, opt = _setup(["arl:alpha=0.5"])
    arl = defended.defenses[0]
    xb, yb = X[:32], Y[:32]
    loss = F.cross_entropy(head(defended(xb)), yb) + defended.loss(yb)
    before = [p.detach().clone() for p in arl.decoder.parameters()]
    opt.zero_grad()
    loss.backward()
    opt.step()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in arl.decoder.parameters())
    assert not any(p is q for p in arl.decoder.parameters() for q in defended.parameters())
    defended.step()
    assert not all(torch.equal(a, b) for a, b in zip(before, arl.decoder.parameters()))


class _ItemDataset(Dataset):  # a generic Dataset of (x, y) items (not tensors held together)
    def __len__(self):
        return len(X)

    def __getitem__(self, i):
        return X[i], Y[i]


def test_cem_reads_a_dataloader_without_advancing_its_generator():
    """data=DataLoader: CEM's epoch pass re-reads the dataset in order (never through the loader's
    sampler), so the user's shuffling generator is where the loop left it; the fit equals the
    one from (x, y) tensors."""
    fits = []
    for data in ("tensors", "loader"):
        encoder, head = _nets()
        opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
        g = torch.Generator().manual_seed(5)
        loader = DataLoader(_ItemDataset(), batch_size=32, shuffle=True, generator=g)
        defended = defend(encoder=encoder, defenses=["noise:sigma=0.1", "cem:lam=0.1,k_per_class=2"], optimizer=opt,
                          data=(X, Y) if data == "tensors" else loader)
        state = g.get_state().clone()
        xb, yb = X[:32], Y[:32]
        (F.cross_entropy(head(defended(xb)), yb) + defended.loss(yb)).backward()
        assert torch.equal(g.get_state(), state)
        fits.append(defended.defenses[1].fit.means)
    assert torch.equal(*fits)


def test_cem_without_data_paper_objective_says_what_to_pass():
    defended, head, opt = _setup(["noise:sigma=0.1", "cem:lam=1,k_per_class=2"], data=None)
    defended(X[:32])
    with pytest.raises(ValueError, match="pass data="):
        defended.loss(Y[:32])


def test_cem_without_data_works_from_the_epochs_features():
    """No training set: the code objective has no loss in epoch 1 and refits at its end on the
    cached features; the paper objective runs once estimate() gave it a start, and refits at
    every epoch end on the epoch's features."""
    defended, head, opt = _setup(["noise:sigma=0.1", "cem:lam=1,objective=code,clusters_per_class=2"], data=None)
    cem = defended.defenses[1]
    _epoch(defended, head, opt)
    assert cem.kmeans is not None and cem.history == []
    _epoch(defended, head, opt)
    assert len(cem.history) == 3
    defended, head, opt = _setup(["noise:sigma=0.1", "cem:lam=1,k_per_class=2"], data=None)
    cem = defended.defenses[1]
    with torch.no_grad():
        cem.estimate(defended.encoder(X), Y)
    first = cem.fit.means.clone()
    _epoch(defended, head, opt)
    assert len(cem.history) == 3 and not torch.equal(cem.fit.means, first)


STATE_CASES = {
    "cem-cached": ["noise:sigma=0.1", "cem:lam=1,k_per_class=2,feature_source=cached"],
    "cem-recompute": ["noise:sigma=0.1", "cem:lam=1,k_per_class=2"],
    "cem-code-no-data": ["noise:sigma=0.1", "cem:lam=5,objective=code,clusters_per_class=2"],
    "arl+dropout": ["dropout:p=0.2", "arl:alpha=0.5"],
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_defense_state_resumes_a_user_loop_exactly(case, tmp_path):
    """Checkpoint after epoch 2 (encoder, head, optimizer, defense_state() through torch.save /
    torch.load(weights_only=True)), restore into fresh objects, train epoch 3: bit-identical to
    three uninterrupted epochs (CEM's end-of-epoch estimate and ARL's proxy included)."""
    specs = STATE_CASES[case]
    data = None if "no-data" in case else (X, Y)

    def run(epochs, start=None):
        defended, head, opt = _setup(specs, data=data)
        order = torch.Generator().manual_seed(1)
        if start is not None:
            ck = torch.load(start, weights_only=True)
            defended.encoder.load_state_dict(ck["encoder"])
            head.load_state_dict(ck["head"])
            opt.load_state_dict(ck["opt"])
            order.set_state(ck["order"])
            defended.load_defense_state(ck["defenses"])
        for _ in range(epochs):
            _epoch(defended, head, opt, order=order)
        return defended, head, opt, order

    full = _weights(*run(3)[:2])
    defended, head, opt, order = run(2)
    path = tmp_path / "ck.pt"
    torch.save({"encoder": defended.encoder.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(),
                "order": order.get_state(), "defenses": defended.defense_state()}, path)
    resumed, head2, _, _ = run(1, start=path)
    assert resumed.epoch == 3
    assert torch.equal(_weights(resumed, head2), full)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("specs, match", [
    (["nosuch"], r"expected one of \[.*'cem'.*'noise'.*\], got 'nosuch'"),
    (["cem:lamda=1"], r"\['lamda'\].*valid.*'lam'"),
    (["noise:sigma=-1"], "sigma"),
    ([42], r"defenses\[0\]"),
    (3.5, "defenses"),
])
def test_unknown_or_bad_defense_specs(specs, match):
    with pytest.raises(ValueError, match=match):
        defend(encoder=nn.Linear(2, 2), defenses=specs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="encoder"):
        defend(encoder="mlp", defenses=[])
    with pytest.raises(ValueError, match="optimizer"):
        defend(encoder=nn.Linear(2, 2), optimizer="adam")
    with pytest.raises(ValueError, match="data"):
        defend(encoder=nn.Linear(2, 2), data=3)
    noise = GaussianNoise(0.1)
    with pytest.raises(ValueError, match="twice"):
        defend(encoder=nn.Linear(2, 2), defenses=[noise, noise])
    with pytest.raises(ValueError, match="head"):
        defend(encoder=nn.Linear(8, 4), defenses=[make_defense("tl_freeze", freeze=1, public_data=(X, Y))])


@pytest.mark.parametrize("spec", ["cem:lam=1,k_per_class=2", "unicon:lam=1"])
def test_defense_needing_labels_without_them(spec):
    defended, head, _ = _setup(["noise:sigma=0.1", spec])
    defended(X[:32])
    with pytest.raises(ValueError, match=r"need the labels.*loss\(y\)"):
        defended.loss()


def test_labels_of_the_wrong_shape():
    defended, head, _ = _setup(["noise:sigma=0.1", "cem:lam=1,k_per_class=2"])
    defended(X[:32])
    with pytest.raises(ValueError, match="expected 32 labels"):
        defended.loss(Y[:31])
    with pytest.raises(ValueError, match="integer"):
        defended.loss(Y[:32].float())


def test_hooks_out_of_order():
    defended, head, opt = _setup(["noise:sigma=0.1", "nopeek:alpha=0.5"])
    with pytest.raises(ValueError, match=r"epoch_end\(\): no training step in epoch 0"):
        defended.epoch_end()
    with pytest.raises(ValueError, match=r"step\(\): no training step"):
        defended.step()
    with pytest.raises(ValueError, match=r"loss\(\): no training step"):
        defended.loss()
    z = defended(X[:32])
    extra = defended.loss()
    with pytest.raises(ValueError, match="already called"):
        defended.loss()
    (F.cross_entropy(head(z), Y[:32]) + extra).backward()
    defended.step()
    with pytest.raises(ValueError, match=r"step\(\): no training step since the last step"):
        defended.step()
    defended.epoch_end()
    with pytest.raises(ValueError, match=r"epoch_end\(\): no training step in epoch 1"):
        defended.epoch_end()
    # a forgotten loss(): caught at step(), at the next training forward and at epoch_end()
    defended(X[:32])
    with pytest.raises(ValueError, match=r"step\(\): loss\(\) was not called.*nopeek"):
        defended.step()
    with pytest.raises(ValueError, match=r"loss\(\) was not called for the previous training step"):
        defended(X[:32])
    with pytest.raises(ValueError, match=r"epoch_end\(\): loss\(\) was not called"):
        defended.epoch_end()


def test_forgotten_step_with_a_defense_that_updates_after_it():
    defended, head, opt = _setup(["arl:alpha=0.5"])
    defended(X[:32])
    defended.loss()
    with pytest.raises(ValueError, match=r"step\(\) was not called.*arl"):
        defended(X[:32])


# ----------------------------------------------------------------------------- the deployed model

def test_split_model_feeds_the_package_attacks():
    defended, head, opt = _setup(["noise:sigma=0.1"])
    _epoch(defended, head, opt)
    model = defended.split_model(input_shape=(8,))
    att = DecoderAttack(epochs=1, batch_size=32)
    att.fit(model, DATA.train, seed=0, device="cpu", progress=False)
    ev = att.evaluate(model, DATA.test, seed=0)
    assert ev["mse"] > 0 and ev["n"] == len(DATA.test)
    assert isinstance(defended, DefendedEncoder) and model.encoder is defended.encoder


# ----------------------------------------------------------------------------- torch.compile

SPECS = ["noise:sigma=0.1", "dropout:p=0.2", "nopeek:alpha=0.3", "cem:lam=1,k_per_class=2"]


def _compiled_loop(mode, backend):
    torch._dynamo.reset()
    encoder, head = _nets()
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    enc = torch.compile(encoder, backend=backend) if mode == "encoder" else encoder
    defended = defend(encoder=enc, defenses=SPECS, optimizer=opt, head=head, data=(X, Y))
    fwd = torch.compile(defended, backend=backend) if mode == "defended" else defended
    for _ in range(2):
        defended.train()
        for b in range(0, len(X), 32):
            xb, yb = X[b:b + 32], Y[b:b + 32]
            loss = F.cross_entropy(head(fwd(xb)), yb) + defended.loss(yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            defended.step()
        defended.epoch_end()
    return _weights(encoder, head), defended.defenses[3].history


def _skip_without_dynamo():
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile (dynamo) is not supported on this Python/platform")


@pytest.mark.parametrize("mode", ["encoder", "defended"])
def test_torch_compile_aot_eager(mode):
    """Compiled (dynamo + AOTAutograd graphs, eager kernels: ~2 s on CPU) vs eager: the same
    training to float32 rounding (rtol 1e-4: AOTAutograd's decompositions may round differently
    in the last bits, which 6 steps of Adam do not amplify beyond 1e-5 here)."""
    _skip_without_dynamo()
    eager, h0 = _compiled_loop("none", None)
    got, h1 = _compiled_loop(mode, "aot_eager")
    assert torch.allclose(got, eager, rtol=1e-4, atol=1e-6)
    assert len(h1) == len(h0) == 6 and all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(h1, h0))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["encoder", "defended"])
def test_torch_compile_inductor(mode):
    """The default backend (inductor: generated C++ kernels on CPU) — about 40 s of compilation
    on a cold cache on 2 CPU cores, hence slow.  Same tolerance reasoning as the aot_eager test."""
    _skip_without_dynamo()
    if shutil.which("g++") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile's inductor backend needs a C++ compiler on CPU; none found")
    eager, _ = _compiled_loop("none", None)
    got, _ = _compiled_loop(mode, "inductor")
    assert torch.allclose(got, eager, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- CUDA

@pytest.mark.gpu
def test_cuda_follows_the_encoder():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    defended, head, opt = _setup(["noise:sigma=0.1", "dropout:p=0.2", "arl:alpha=0.3", "cem:lam=1,k_per_class=2"],
                                 device="cuda")
    assert defended.device.type == "cuda" and next(head.parameters()).device.type == "cuda"
    for _ in range(2):
        defended.train()
        for b in range(0, len(X), 32):
            xb, yb = X[b:b + 32].to(defended.device), Y[b:b + 32].to(defended.device)  # the user moves data
            z = defended(xb)
            assert z.device.type == "cuda"
            loss = F.cross_entropy(head(z), yb) + defended.loss(yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            defended.step()
        defended.epoch_end()
    assert defended.generator.device.type == "cuda"
    assert defended.defenses[2].decoder[0].weight.device.type == "cuda"
    assert torch.isfinite(_weights(defended, head)).all()


# ----------------------------------------------------------------------------- inputs checked up front

def _enc_head():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4)), torch.nn.Linear(4, 3)


def test_an_optimizer_without_the_encoders_parameters_is_refused_like_opacus():
    enc, head = _enc_head()
    with pytest.raises(ValueError, match=r"optimizer: holds 0 of the encoder's 2 trainable parameter tensors "
                                         r"\(missing: 1.weight, 1.bias\)"):
        defend(encoder=enc, defenses=["noise:sigma=0.1"], optimizer=torch.optim.Adam(head.parameters()))
    part = torch.optim.Adam([enc[1].weight, *head.parameters()])
    with pytest.raises(ValueError, match=r"holds 1 of .* \(missing: 1.bias\)"):
        defend(encoder=enc, defenses=["noise:sigma=0.1"], optimizer=part)
    enc[1].bias.requires_grad_(False)  # frozen parameters need not be there
    defend(encoder=enc, defenses=["noise:sigma=0.1"], optimizer=part)


@pytest.mark.parametrize("case, match", [
    ("inputs", r"data: the encoder cannot take its inputs of shape \(5,\)"),
    ("head", r"head: cannot take the encoder's features of shape \(4,\)"),
    ("labels", r"head: outputs 3 classes, but data has labels up to 7"),
    ("num_classes", r"num_classes: 5, but the head outputs 3 classes"),
])
def test_data_and_head_that_do_not_fit_are_refused_with_one_line(case, match):
    enc, head = _enc_head()
    x, y = torch.rand(6, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    kw = {}
    if case == "inputs":
        x = torch.rand(6, 5)
    elif case == "head":
        head = torch.nn.Linear(7, 3)
    elif case == "labels":
        y = torch.tensor([0, 1, 2, 7, 1, 2])
    else:
        kw["num_classes"] = 5
    with pytest.raises(ValueError, match=match) as exc:
        defend(encoder=enc, head=head, defenses=["noise:sigma=0.1"], data=(x, y), **kw)
    assert "\n" not in str(exc.value)


def test_the_up_front_check_leaves_modes_and_random_state_alone():
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4), torch.nn.Dropout(0.5))
    head = torch.nn.Linear(4, 3)
    enc.train()
    head.eval()
    data = (torch.rand(6, 8), torch.zeros(6, dtype=torch.long))
    state = torch.get_rng_state()
    defend(encoder=enc, head=head, defenses=["noise:sigma=0.1"], data=data)
    assert enc.training and not head.training and torch.equal(torch.get_rng_state(), state)
