"""`invlimits attack` / `invlimits train`: results schema, resume, verify sizing, bad input."""

import argparse
import json

import pytest

from empirics.cli import main
from empirics.sections import attack_section


def test_attack_benchmark_schema(tmp_path):
    rc = main(["attack", "--benchmark", "optimality", "--attacks", "decoder,optimization", "--n-aux", "1500",
               "--n-test", "300", "--epochs", "3", "--out", str(tmp_path), "--device", "cpu"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert rc in (0, 1)  # tiny budget: the 1.05 check may fail here; the schema is what is tested
    recs = res["optimality"]
    assert len(recs) == 2 * 5
    for r in recs:
        assert {"attack", "setting", "mse", "mmse", "mmse_stderr", "ratio"} <= set(r)
        assert ("nonlinear" in r["setting"]) or ("linear" in r["setting"])
        assert r["ratio"] == pytest.approx(r["mse"] / r["mmse"])
    assert len(list((tmp_path / "records").glob("*.json"))) == 10  # one record per (attack, setting)
    assert sorted(r["key"] for r in res["records"]) == sorted(p.stem for p in (tmp_path / "records").glob("*.json"))
    # a rerun reuses every record; more epochs recompute every cell
    assert main(["attack", "--benchmark", "optimality", "--attacks", "decoder,optimization", "--n-aux", "1500",
                 "--n-test", "300", "--epochs", "4", "--out", str(tmp_path), "--device", "cpu"]) in (0, 1)
    assert len(list((tmp_path / "records").glob("*.json"))) == 15  # decoder cells changed; optimization did not


def test_verify_args_sizes_the_benchmark():
    for quick in (False, True):
        p = argparse.ArgumentParser()
        attack_section.add_arguments(p)
        ns = p.parse_args(["--dataset", "digits"])
        ns.quick, ns.verify = quick, True
        attack_section.verify_args(ns)
        assert ns.benchmark == "optimality" and ns.dataset is None
        assert ns.n_aux <= 20000 and ns.epochs <= 12


def test_train_resumes_refuses_other_settings_and_bad_checkpoints(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--batch-size", "256", "--out", str(tmp_path), "--device", "cpu",
            "--defense", "noise:sigma=0.05"]
    assert main(args + ["--epochs", "2"]) == 0
    assert main(args + ["--epochs", "3"]) == 0  # more epochs continue the same run
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["train"]["resumed_from_epoch"] == 2 and len(res["train"]["history"]) == 3
    assert res["train"]["defenses"][0]["name"] == "noise"
    assert [r["config"]["train"]["epochs"] for r in res["records"]] == [3]
    capsys.readouterr()
    # a changed setting is refused with one line naming it; nothing is trained
    ckpt = (tmp_path / "checkpoint.pt").read_bytes()
    other = [a if a != "noise:sigma=0.05" else "noise:sigma=2.0" for a in args]
    assert main(other + ["--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "sigma: 0.05 → 2.0" in err and "--fresh" in err and len(err.strip().splitlines()) == 1
    assert main(args + ["--epochs", "3", "--lr", "0.5"]) == 2
    assert "lr: 0.001 → 0.5" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == ckpt
    # --fresh trains the new configuration from scratch
    assert main(other + ["--epochs", "2", "--fresh"]) in (0, 1)
    assert json.loads((tmp_path / "results.json").read_text())["train"]["resumed_from_epoch"] == 0


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, None])
def test_corrupt_checkpoint_is_one_line_exit_2(tmp_path, capsys, content):
    args = ["train", "--dataset", "synthetic", "--epochs", "1", "--out", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    p = tmp_path / "checkpoint.pt"
    p.write_bytes(p.read_bytes()[:200] if content is None else content)
    capsys.readouterr()
    assert main(args[:4] + ["2"] + args[5:]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["attack", "--noise", "-1", "--dataset", "digits"],
    ["attack", "--attacks", "magic"],
    ["attack", "--epochs", "0"],
    ["attack", "--dataset", "digits", "--noise", "nan"],
    ["train", "--quick"],
    ["train", "--lr", "nan"],
    ["defenses", "--experiment", "defense-table", "--attack-epochs", "0"],
    ["defenses", "--experiment", "defense-table", "--baselines", "noise,bogus"],
    ["defenses", "--experiment", "entropy-vs-mse", "--sigmas", "0.1,x"],
    ["train", "--defense", "bogus"],
    ["train", "--defense", "noise:sigma"],
    ["train", "--dataset", "cifar10"],
])
def test_bad_cli_input_exits_2(tmp_path, argv):
    assert main(argv + ["--out", str(tmp_path)]) == 2
