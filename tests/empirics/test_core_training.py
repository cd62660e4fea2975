"""The one training loop: determinism, defense hook order, checkpoints, resume after a kill."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from empirics.data import ArrayDataset
from empirics.defenses.base import Defense
from empirics.models import SplitModel, make_model
from empirics.training import evaluate, train

torch.set_num_threads(1)


def _blobs(n=96, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d)) + 2.0 * np.eye(3, d)[y]
    return ArrayDataset(x, y)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Recorder(Defense):
    """Records the hook calls; adds a deterministic noisy transform so generators matter."""

    name = "recorder-test"

    def __init__(self, log, sigma=0.0):
        self.log, self.sigma = log, sigma

    def attach(self, model, optimizer, *, data=None):
        self.log.append("attach")
        return model, optimizer

    def on_epoch_start(self, ctx):
        self.log.append(f"epoch{ctx.epoch}")

    def transform_features(self, z, *, training, generator=None):
        if training:
            self.log.append("transform")
        if self.sigma and training:
            return z + self.sigma * torch.randn(z.shape, generator=generator, device=z.device)
        return z

    def extra_loss(self, step):
        self.log.append("extra")
        return 0.0 * step.z.sum()

    def after_step(self, step):
        self.log.append("after")


@pytest.mark.parametrize("seed", [0, 3])
def test_same_seed_bit_identical_and_different_seed_differs(seed):
    data = _blobs()
    runs = []
    for s in (seed, seed, seed + 1):
        m = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4, seed=0)
        train(m, data, epochs=2, batch_size=32, seed=s, device="cpu", progress=False,
              defenses=[_Recorder([], sigma=0.1)])
        runs.append(_weights(m))
    assert _equal(runs[0], runs[1])
    assert not _equal(runs[0], runs[2])


def test_hook_order():
    log = []
    m = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    train(m, _blobs(n=64), epochs=2, batch_size=32, device="cpu", progress=False, defenses=[_Recorder(log)])
    expected = ["attach"] + 2 * (["epoch?"] + 2 * ["transform", "extra", "after"])
    got = [("epoch?" if e.startswith("epoch") else e) for e in log]
    assert got == expected
    assert [e for e in log if e.startswith("epoch")] == ["epoch0", "epoch1"]


def test_global_rng_untouched_and_learns():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    data = _blobs(n=200)
    m = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    res = train(m, data, epochs=15, batch_size=32, device="cpu", progress=False)
    assert torch.equal(before, torch.get_rng_state())
    # three well-separated blobs: a trained MLP must beat chance (1/3) by far
    assert evaluate(m, data)["accuracy"] > 0.8
    assert len(res.history) == 15 and res.history[-1]["loss"] < res.history[0]["loss"]


def test_global_rng_untouched_with_random_defenses():
    """Noise and dropout draw from the loop's generators only (the dry forward pass of the
    input check included), never from the caller's global RNG."""
    torch.manual_seed(7)
    before = torch.get_rng_state()
    m = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    train(m, _blobs(n=64), epochs=1, batch_size=32, device="cpu", progress=False,
          defenses=["noise:sigma=0.1", "dropout:p=0.2"])
    assert torch.equal(before, torch.get_rng_state())


def test_checkpoint_resume_identical(tmp_path):
    data = _blobs()
    full = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    train(full, data, epochs=4, batch_size=32, device="cpu", progress=False, defenses=[_Recorder([], 0.1)])
    part = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    ck = tmp_path / "ck.pt"
    train(part, data, epochs=2, batch_size=32, device="cpu", progress=False, checkpoint=ck,
          defenses=[_Recorder([], 0.1)])
    resumed = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
    res = train(resumed, data, epochs=4, batch_size=32, device="cpu", progress=False, checkpoint=ck,
                defenses=[_Recorder([], 0.1)])
    assert res.resumed_from_epoch == 2 and len(res.history) == 4
    assert _equal(_weights(full), _weights(resumed))
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_core_training import _blobs, _Recorder
    from empirics.models import make_model
    from empirics.training import train

    class Killer(_Recorder):
        def on_epoch_start(self, ctx):
            if ctx.epoch == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)   # die mid-run, no cleanup

    m = make_model("digits", num_classes=3, seed=1)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 1, 8, 8)); y = rng.integers(0, 3, 64)
    from empirics.data import ArrayDataset
    train(m, ArrayDataset(x, y), epochs=5, batch_size=16, device="cpu", progress=False,
          checkpoint=sys.argv[1], defenses=[Killer([], 0.05)])
""")


def test_killed_training_resumes_identically(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=os.path.dirname(__file__)))
    ck = tmp_path / "ck.pt"
    proc = subprocess.run([sys.executable, str(script), str(ck), "3"], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]  # really killed
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 3

    def make():
        m = make_model("digits", num_classes=3, seed=1)
        rng = np.random.default_rng(0)
        return m, ArrayDataset(rng.uniform(size=(64, 1, 8, 8)), rng.integers(0, 3, 64))

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed run: the thread count changes a convolution's last bits
    try:
        resumed, data = make()
        res = train(resumed, data, epochs=5, batch_size=16, device="cpu", progress=False, checkpoint=ck,
                    defenses=[_Recorder([], 0.05)])
        assert res.resumed_from_epoch == 3
        full, data = make()
        train(full, data, epochs=5, batch_size=16, device="cpu", progress=False, defenses=[_Recorder([], 0.05)])
    finally:
        torch.set_num_threads(old)
    assert _equal(_weights(full), _weights(resumed))


@pytest.mark.parametrize("case, match", [
    ("shape", "expected inputs of shape"),
    ("range", r"\[0, 1\]"),
    ("nan", "NaN"),
    ("empty", "empty"),
    ("mismatch", "does not fit the head"),
    ("labels", "labels go up to"),
    ("epochs", "epochs"),
])
def test_bad_input_raises_before_training(case, match):
    m = make_model("digits", num_classes=3)
    x = np.random.default_rng(0).uniform(size=(8, 1, 8, 8))
    y = np.zeros(8, dtype=int)
    kw = {}
    if case == "shape":
        data = (x[:, :, :6, :6], y)
        data = ArrayDataset(*data)
    elif case == "range":
        data = ArrayDataset(x * 2, y)
    elif case == "nan":
        x[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match=match):
            ArrayDataset(x, y)
        return
    elif case == "empty":
        with pytest.raises(ValueError, match=match):
            ArrayDataset(np.zeros((0, 1, 8, 8)), np.zeros(0))
        return
    elif case == "mismatch":
        m = SplitModel(torch.nn.Linear(6, 4), torch.nn.Linear(5, 3))
        data = ArrayDataset(np.zeros((8, 6)), y)
    elif case == "labels":
        data = ArrayDataset(x, np.full(8, 7))
    else:
        data, kw = ArrayDataset(x, y), {"epochs": -1}
    kw.setdefault("epochs", 1)
    with pytest.raises(ValueError, match=match):
        train(m, data, device="cpu", progress=False, **kw)


@pytest.mark.parametrize("specs", [
    ["dropout:p=0.2", "arl:alpha=0.5"],  # ARL's proxy decoder and its Adam moments resume
    ["noise:sigma=0.1", "cem:lam=1,k_per_class=2,feature_source=cached"],  # CEM's end-of-epoch estimate
])
def test_checkpoint_resume_identical_with_stateful_defenses(tmp_path, specs):
    data = _blobs()

    def run(epochs, ck=None):
        m = make_model("synthetic", num_classes=3, input_shape=(6,), bottleneck=4)
        res = train(m, data, epochs=epochs, batch_size=32, device="cpu", progress=False, checkpoint=ck,
                    defenses=specs)
        return m, res

    full, _ = run(4)
    ck = tmp_path / "ck.pt"
    run(2, ck)
    resumed, res = run(4, ck)
    assert res.resumed_from_epoch == 2
    assert _equal(_weights(full), _weights(resumed))
