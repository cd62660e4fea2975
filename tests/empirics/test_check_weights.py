"""Checking an already trained encoder as deployed: --weights (a state_dict from a plain PyTorch loop)
and the library's nn.Module form; bad weights give one line and exit 2."""

import collections
import json
import sys

import pytest
import torch
from torch import nn

from empirics.cli import main
from empirics.experiments import check_defense

MODULE = '''
from torch import nn


def make_encoder():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def other_encoder():
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))


class Thing:
    pass
'''


@pytest.fixture()
def user(tmp_path, monkeypatch):
    (tmp_path / "user_enc.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("user_enc", None)
    return tmp_path


def _train_plainly(path):
    """A plain PyTorch loop, outside the package: encoder + linear head on samples of a mixture."""
    import user_enc
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    x = torch.randn(600, 16, generator=g) + 3.0 * nn.functional.one_hot(y, 16).float()
    torch.manual_seed(0)
    enc, head = user_enc.make_encoder(), nn.Linear(4, 3)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(30):
        loss = nn.functional.cross_entropy(head(enc(x) + 0.1 * torch.randn(600, 4, generator=g)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(enc.state_dict(), path)
    return enc


def test_weights_are_checked_as_deployed_without_training(user):
    enc = _train_plainly(user / "enc.pt")
    rc = main(["check-defense", "user_enc:make_encoder", "--weights", "enc.pt", "--dataset", "synthetic-mixture",
               "--noise", "0.1", "--out", str(user / "out"), "--quick"])
    res = json.loads((user / "out" / "results.json").read_text())
    assert rc == 0 and res["encoder_trained"] is False and res["head_trained"] is True
    assert res["weights"] == "enc.pt"
    rec = json.loads(next((user / "out" / "records").glob("*.json")).read_text())
    assert rec["config"]["weights_hash"] and rec["config"]["train_encoder"] is False
    # the same weights through the library's module form: the same encoder, never modified
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    flags = [p.requires_grad for p in enc.parameters()]
    lib = check_defense(enc, dataset="synthetic-mixture", noise=0.1, epochs=2, attacks=("decoder:epochs=2",),
                        n_mc=2000)
    assert lib.encoder_trained is False
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert [p.requires_grad for p in enc.parameters()] == flags


def test_no_head(user):
    _train_plainly(user / "enc.pt")
    rc = main(["check-defense", "user_enc:make_encoder", "--weights", "enc.pt", "--no-head", "--dataset",
               "synthetic-mixture", "--out", str(user / "out"), "--quick"])
    res = json.loads((user / "out" / "results.json").read_text())
    assert rc == 0 and res["head_trained"] is False and res["accuracy"] is None


def test_no_head_needs_an_encoder_checked_as_given(user, capsys):
    rc = main(["check-defense", "user_enc:make_encoder", "--no-head", "--dataset", "synthetic-mixture",
               "--out", str(user / "out"), "--quick"])
    assert rc == 2 and "head" in capsys.readouterr().err


def _bad_weights(user, kind):
    p = user / f"{kind}.pt"
    if kind == "list":
        torch.save([1, 2, 3], p)
    elif kind == "object":
        import user_enc
        torch.save({"w": user_enc.Thing()}, p)
    elif kind == "garbage":
        p.write_bytes(b"not a torch file at all")
    elif kind == "counter":
        torch.save(collections.OrderedDict(w=3), p)
    elif kind == "mismatch":
        import user_enc
        torch.save(user_enc.other_encoder().state_dict(), p)
    return p.name if kind != "missing" else "missing.pt"


@pytest.mark.parametrize("kind, needle", [
    ("missing", "no such file"),
    ("list", "not a state_dict"),
    ("counter", "not a state_dict"),
    ("object", "Thing"),
    ("garbage", "not a torch state_dict file"),
    ("mismatch", "does not fit the encoder"),
])
def test_bad_weights_exit_2_with_one_line(user, capsys, kind, needle):
    path = _bad_weights(user, kind)
    rc = main(["check-defense", "user_enc:make_encoder", "--weights", path, "--dataset", "synthetic-mixture",
               "--out", str(user / "out"), "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("invlimits check-defense: error: --weights:")
    assert needle in err[0]
