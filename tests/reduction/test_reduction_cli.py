"""`invlimits reduction` (empirics/sections/reduction_section.py) on tiny settings."""

import json

import numpy as np
import pytest

from empirics.cli import main
from reduction import occurrences, random_e3sat, write_dimacs

COLUMNS = ["instance", "n", "m", "B", "SAT?", "opt", "attack_unsat", "attack_res", "oracle_res", "bound",
           "margin", "pass"]


def test_cli_reduction_small_batch(tmp_path, capsys):
    rc = main(["reduction", "--out", str(tmp_path), "--planted", "2", "--over", "3", "--steps", "30",
               "--restarts", "2", "--pgd-every", "0"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    sec = res["sections"]["reduction"]
    assert res["passed"] and sec["passed"]
    rows = sec["tables"]["instances"]
    assert len(rows) == 5 and list(rows[0]) == COLUMNS
    assert all(r["margin"] >= 0 and r["pass"] for r in rows)
    assert all(r["attack_unsat"] >= r["opt"] for r in rows)
    assert (tmp_path / "reduction_residual_vs_maxsat.png").exists()
    out = capsys.readouterr().out
    assert "MaxSAT" in out and "wrote" in out


def test_cli_reduction_dimacs(tmp_path):
    f = random_e3sat(10, 40, 12, np.random.default_rng(0))
    p = write_dimacs(f, tmp_path / "f.cnf")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), "--steps", "30", "--no-figure"])
    assert rc == 0
    rows = json.loads((tmp_path / "o" / "results.json").read_text())["sections"]["reduction"]["tables"]["instances"]
    assert [r["instance"] for r in rows] == ["f.cnf"]
    assert rows[0]["B"] == int(occurrences(f).max())  # default B: the largest occurrence count


@pytest.mark.parametrize("text,extra,msg", [
    ("p cnf 3 1\n1 x 0\n", [], "line 2"),
    ("p cnf 3 2\n1 2 3 0\n1 -2 3 0\n", ["--B", "1"], "violates the stated B"),
])
def test_cli_reduction_bad_input_exits_2(tmp_path, capsys, text, extra, msg):
    p = tmp_path / "bad.cnf"
    p.write_text(text)
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), *extra])
    assert rc == 2
    assert msg in capsys.readouterr().err
