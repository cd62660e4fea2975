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


_UNITS = "p cnf 6000 6000\n" + "".join(f"{i} 0\n" for i in range(1, 6001))  # compact W1, W2: (m + 2d)² floats


@pytest.mark.parametrize("text,extra,msg", [
    ("p cnf 3 1\n1 x 0\n", [], "line 2: non-integer token 'x'"),
    ("p cnf 3 2\n1 2 3 0\n1 -2 3 0\n", ["--B", "1"], "violates the stated B = 1"),
    ("p cnf 99999999999 1\n1 2 3 0\n", [],
     "line 1: header declares n = 99999999999 variables, above the limit of 1000000"),
    ("p cnf 2000000 1\n1 2 3 0\n", [], "line 1: header declares n = 2000000 variables, above the limit of 1000000"),
    ("p cnf 3 99999999999\n1 2 3 0\n", [], "header declares m = 99999999999 clauses, above the limit of 1000000"),
    ("p cnf 0 0\n", [], "expected at least one clause, got an empty formula (n = 0, m = 0)"),
    ("p cnf 5 0\n", [], "expected at least one clause, got an empty formula (n = 5, m = 0)"),
    (_UNITS, [], "the compact network for d = 6000 variables, m = 6000 clauses, B = 1, copies = 100 needs 2.41 GiB"),
], ids=["token", "B", "n-1e11", "n-2e6", "m-1e11", "empty", "no-clauses", "network-size"])
def test_cli_reduction_bad_input_exits_2(tmp_path, capsys, text, extra, msg):
    """Exit 2 with one line on stderr (no traceback), before anything is built or written."""
    p = tmp_path / "bad.cnf"
    p.write_text(text)
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2
    assert len(lines) == 1 and "Traceback" not in err, err
    assert msg in lines[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_reduction_checks_every_file_before_running_any(tmp_path, capsys):
    good = write_dimacs(random_e3sat(10, 40, 12, np.random.default_rng(0)), tmp_path / "good.cnf")
    bad = tmp_path / "bad.cnf"
    bad.write_text("p cnf 0 0\n")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(good), "--dimacs", str(bad)])
    assert rc == 2 and "bad.cnf" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_reduction_dimacs_with_unused_variables(tmp_path):
    """A header may declare variables that occur nowhere: they are dropped from the network and the
    run passes (the exhaustive check covers the 3 occurring variables)."""
    p = tmp_path / "unused.cnf"
    p.write_text("p cnf 100 2\n1 -2 3 0\n-1 2 3 0\n")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), "--steps", "20", "--no-figure"])
    assert rc == 0
    sec = json.loads((tmp_path / "o" / "results.json").read_text())["sections"]["reduction"]
    assert sec["passed"] and sec["tables"]["instances"][0]["n"] == 100
    assert any(c["check"].startswith("exhaustive") and c["passed"] for c in sec["checks"])
