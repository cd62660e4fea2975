"""Sweep specs: validation (one line naming the key, exit 2, before anything runs) and expansion
into exactly the configurations the experiments' own cell functions build."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from empirics.sweep.spec import expand, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "sweeps"

BASE = {"sweep": {"experiment": "entropy-vs-mse"}, "grid": {"sigma": [0.1, 0.3], "lam": [0.0, 0.01], "seed": [0, 1]},
        "settings": {"epochs": 2, "attack_epochs": 2}}


def _with(**tables):
    d = {k: dict(v) for k, v in BASE.items()}
    for t, kv in tables.items():
        d.setdefault(t, {})
        for k, v in kv.items():
            if v is None:
                d[t].pop(k, None)
            else:
                d[t][k] = v
    return d


@pytest.mark.parametrize("tables, key", [
    ({"grid": {"sigmas": [0.1]}}, "grid.sigmas"),  # unknown key (plural)
    ({"settings": {"epoch": 3}}, "settings.epoch"),
    ({"grid": {"baseline": ["noise"]}}, "grid.baseline"),  # a defense-table key in entropy-vs-mse
    ({"grid": {"sigma": []}}, "grid.sigma"),  # empty axis
    ({"grid": {"sigma": 0.1}}, "grid.sigma"),  # a scalar where an axis belongs
    ({"grid": {"sigma": ["a"]}}, "grid.sigma[0]"),  # wrong type
    ({"grid": {"seed": [0, 1.5]}}, "grid.seed[1]"),
    ({"grid": {"seed": [True]}}, "grid.seed[0]"),
    ({"grid": {"sigma": [0.1, 0.1]}}, "grid.sigma"),  # repeated value
    ({"grid": {"sigma": [-0.1]}}, "grid.sigma[0]"),
    ({"settings": {"epochs": "2"}}, "settings.epochs"),
    ({"settings": {"epochs": 0}}, "settings.epochs"),
    ({"settings": {"sigma": 0.2}}, "settings.sigma"),  # both an axis and a setting
    ({"settings": {"dataset": "cifar100"}}, "settings.dataset"),
    ({"settings": {"cem_params": 3}}, "settings.cem_params"),
    ({"resources": {"num_gpu": 1}}, "resources.num_gpu"),
    ({"resources": {"num_cpus": 0}}, "resources.num_cpus"),
    ({"sweep": {"experiment": "fig3"}}, "sweep.experiment"),
    ({"sweep": {"experiment": None}}, "sweep.experiment"),
    ({"sweep": {"title": "x"}}, "sweep.title"),
    ({"extra": {"a": 1}}, "[extra]"),
])
def test_spec_errors_name_the_key(tables, key):
    with pytest.raises(ValueError) as e:
        parse_spec(_with(**tables))
    assert key in str(e.value)
    assert "\n" not in str(e.value)


def test_defense_table_keys_are_checked():
    base = {"sweep": {"experiment": "defense-table"}, "grid": {"baseline": ["noise", "nope"]}}
    with pytest.raises(ValueError, match=r"grid\.baseline: expected one of"):
        parse_spec(base)
    with pytest.raises(ValueError, match=r"settings\.attacks: expected names"):
        parse_spec({"sweep": {"experiment": "defense-table"}, "settings": {"attacks": ["decoder", "dec"]}})
    with pytest.raises(ValueError, match=r"grid\.covariance: unknown key for experiment 'defense-table'"):
        parse_spec({"sweep": {"experiment": "defense-table"}, "grid": {"covariance": ["full"]}})


def test_invalid_combination_names_the_cell():
    spec = parse_spec({"sweep": {"experiment": "train"}, "settings": {"defenses": ["noise:sigmaa=1"]}})
    with pytest.raises(ValueError, match=r"cell the settings: defense: unknown parameter\(s\) \['sigmaa'\]"):
        expand(spec)


def test_entropy_cells_equal_the_experiment_function():
    """Every combination is one cell, built by entropy_vs_mse_cells with the same arguments."""
    from empirics.kinds.entropy_mse import entropy_vs_mse_cells
    cells = expand(parse_spec(BASE))
    want = entropy_vs_mse_cells(dataset="digits", sigmas=(0.1, 0.3), lams=(0.0, 0.01), seeds=(0, 1), epochs=2,
                                attack_epochs=2)
    assert len(cells) == 8
    assert sorted(c.key for c in cells) == sorted(c.key() for c in want)


def test_defense_table_cells_equal_the_experiment_function_and_dedupe():
    """A λ axis repeats the cells without CEM: they are one configuration, kept once."""
    from empirics.kinds.defense_table import defense_table_cells
    spec = parse_spec({"sweep": {"experiment": "defense-table"},
                       "grid": {"baseline": ["noise", "dropout"], "lam": [0.01, 0.02], "seed": [0, 1]},
                       "settings": {"epochs": 3, "attack_epochs": 2, "attacks": ["decoder"]}})
    cells = expand(spec)
    want = {c.key() for lam in (0.01, 0.02) for c in defense_table_cells(
        baselines=("noise", "dropout"), seeds=(0, 1), lam=lam, epochs=3, attack_epochs=2)}
    assert len(cells) == len(want) == 2 * 2 * (1 + 2)  # baselines × seeds × (no CEM + CEM at each λ)
    assert {c.key for c in cells} == want


def test_settings_reach_the_configurations():
    spec = parse_spec({"sweep": {"experiment": "defense-table"},
                       "grid": {"baseline": ["dropout"], "sigma": [0.025], "with_cem": [True], "seed": [0]},
                       "settings": {"optimizer": "sgd", "lam": 16.0, "cem_params": {"objective": "code"}}})
    (c,) = expand(spec)
    t = c.config.train
    assert t.optimizer == "sgd"
    defs = {d.name: dict(d.params) for d in t.defenses}
    assert defs["noise"]["sigma"] == 0.025 and defs["dropout"]["p"] == 0.2
    assert defs["cem"]["objective"] == "code" and defs["cem"]["lam"] == 16.0


def test_train_experiment_builds_defense_stack_in_order():
    spec = parse_spec({"sweep": {"experiment": "train"}, "grid": {"lam": [0.0, 0.01]},
                       "settings": {"sigma": 0.1, "defenses": ["dropout:p=0.3"], "attacks": []}})
    a, b = expand(spec)
    assert [d.name for d in a.config.train.defenses] == ["noise", "dropout"]
    assert [d.name for d in b.config.train.defenses] == ["noise", "dropout", "cem"]
    assert a.config.attacks == ()


@pytest.mark.parametrize("name, n, gpus", [("digits_tiny", 8, 0), ("digits_fig3", 12, 0), ("digits_table1", 24, 0),
                                           ("paper_fig3", 36, 1), ("paper_table1", 30, 1)])
def test_shipped_specs(name, n, gpus):
    spec = load_spec(SWEEPS / f"{name}.toml")
    cells = expand(spec)
    assert len(cells) == n and len({c.key for c in cells}) == n
    assert spec.num_gpus == gpus
    if name.startswith("paper"):
        t = cells[0].config.train
        assert (t.dataset, t.preset, t.epochs, t.lr, t.optimizer, t.batch_size) == \
            ("cifar10", "vgg11_bn", 240, 0.05, "sgd", 128)


def test_bad_toml_is_one_line(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[sweep\nexperiment = 1")
    with pytest.raises(ValueError, match="not valid TOML") as e:
        load_spec(p)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="not found"):
        load_spec(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- the command line

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["spec", "ray-address", "sbatch", "quick", "executor"])
def test_bad_input_exits_2_with_one_line_before_any_cell(case, tmp_path, capsys, monkeypatch):
    from empirics.cli import main
    spec = tmp_path / "s.toml"
    spec.write_text((SWEEPS / "digits_tiny.toml").read_text())
    out = tmp_path / "out"
    args = ["sweep", str(spec), "--out", str(out)]
    if case == "spec":
        spec.write_text(spec.read_text().replace("seed = [0, 1, 2, 3]", "seed = []"))
    elif case == "ray-address":
        args += ["--executor", "ray", "--address", f"127.0.0.1:{_free_port()}"]  # nothing listens there
    elif case == "sbatch":
        args += ["--executor", "slurm"]
        monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on PATH
    elif case == "quick":
        args += ["--quick"]
    else:
        args += ["--executor", "mpi"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invlimits sweep: error:"), lines
    want = {"spec": "grid.seed", "ray-address": "--address: no Ray cluster reachable", "sbatch": "sbatch not found",
            "quick": "--quick", "executor": "--executor"}[case]
    assert want in lines[0]
    assert not (out / "records").exists()  # nothing ran


def test_parser_stays_torch_free():
    code = ("import sys; from empirics.cli import build_parser; p = build_parser(); "
            "p.parse_args(['sweep', 'x.toml', '--executor', 'ray']); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from empirics.sweep import parse_spec; assert 'torch' not in sys.modules; "
            "assert 'ray' not in sys.modules and 'submitit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_local_job_states_running_gone_and_zombie():
    """A local job is RUNNING while its process runs, GONE once it exited — also when nobody has
    reaped it yet (a zombie, as a job outliving its driver stays where no init reaps it)."""
    import subprocess
    import sys
    import time

    from empirics.sweep.executors import job_states
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while open(f"/proc/{done.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)  # exited, not reaped: a zombie
        state = {"cluster": "local", "jobs": {"a": str(live.pid), "b": str(done.pid), "c": "not-a-pid"}}
        assert job_states(state, ["a", "b", "c", "d"]) == {"a": "RUNNING", "b": "GONE", "c": "GONE"}
    finally:
        live.communicate(b"")
        done.wait()
    assert job_states(state, ["a"]) == {"a": "GONE"}
