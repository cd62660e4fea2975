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


# ------------------------------------------------------------------------------ exact inversion (issue 22)

_SATLIB = ("c uf-style file\r\np cnf 5 6\r\n 1 -2 3 0\r\n-1 2 -4 0\r\nc comment between clauses\r\n2 3 5 0\r\n"
           "-3 4 -5 0\r\n1 4 5 0\r\n-1 -2 -5 0\r\n%\r\n0\r\n\r\n")


def test_cli_dimacs_reports_exact_inversion_beside_sat(tmp_path):
    """A SATLIB-style file (CRLF, comments between clauses, '%' / '0' trailer, B from the file): the
    MILP's verdict and minimum stand beside CaDiCaL's, and the two routes agree."""
    p = tmp_path / "uf5.cnf"
    p.write_bytes(_SATLIB.encode())
    unsat = write_dimacs(random_e3sat(8, 48, 18, np.random.default_rng(4)), tmp_path / "over.cnf")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), "--dimacs", str(unsat),
               "--steps", "20", "--no-figure", "--norm", "l1"])
    assert rc == 0
    sec = json.loads((tmp_path / "o" / "results.json").read_text())["sections"]["reduction"]
    inst = {r["instance"]: r for r in sec["tables"]["instances"]}
    assert inst["uf5.cnf"]["B"] == 4 and inst["uf5.cnf"]["m"] == 6
    ex = {r["instance"]: r for r in sec["tables"]["exact inversion"]}
    for name, row in ex.items():
        assert row["status"] == "optimal" and row["agree"] is True
        assert row["verdict"] == inst[name]["SAT?"].lower()
        assert row["minimum"] == pytest.approx(inst[name]["opt"], abs=1e-6)   # l1 minimum = MaxSAT optimum
    agree = [c for c in sec["checks"] if c["check"].startswith("two exact routes")]
    assert len(agree) == 2 and all(c["passed"] for c in agree)


def test_cli_dimacs_exact_inversion_skipped_above_the_limit(tmp_path, capsys):
    p = write_dimacs(random_e3sat(10, 30, 12, np.random.default_rng(5)), tmp_path / "f.cnf")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), "--steps", "20", "--no-figure",
               "--exact-max-binaries", "5"])
    assert rc == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "exact inversion skipped" in line]
    assert len(err) == 1 and "above --exact-max-binaries = 5" in err[0]
    row = json.loads((tmp_path / "o" / "results.json").read_text())["sections"]["reduction"]["tables"][
        "exact inversion"][0]
    assert row["status"] == "skipped" and row["binaries"] > 5 and row["minimum"] is None


def test_cli_dimacs_time_limit_is_unknown_not_a_verdict(tmp_path):
    from reduction import random_ksat
    from reduction.checks import _solve

    rng = np.random.default_rng(7)
    f = next(g for g in (random_ksat(45, 200, 3, rng) for _ in range(20)) if not _solve(g, "cadical195")[0])
    p = write_dimacs(f, tmp_path / "hard.cnf")
    rc = main(["reduction", "--out", str(tmp_path / "o"), "--dimacs", str(p), "--steps", "10", "--restarts", "1",
               "--pgd-every", "0", "--no-figure", "--time-limit", "0.2"])
    assert rc == 0
    sec = json.loads((tmp_path / "o" / "results.json").read_text())["sections"]["reduction"]
    row = sec["tables"]["exact inversion"][0]
    assert row["status"] == "unknown" and row["verdict"] == "unknown" and row["agree"] is None
    assert not any(c["check"].startswith("two exact routes") for c in sec["checks"])


def test_cli_phase_transition_tiny(tmp_path, capsys):
    rc = main(["reduction", "--experiment", "phase-transition", "--quick", "--out", str(tmp_path), "--ns", "6",
               "--densities", "2", "6", "--formulas", "4", "--steps", "20", "--restarts", "2"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    sec = res["sections"]["reduction"]
    assert sec["passed"]
    rows = sec["tables"]["phase transition"]
    assert [(r["n"], r["m/n"], r["formulas"]) for r in rows] == [(6, 2.0, 4), (6, 6.0, 4)]
    fams = {r["family"] for r in sec["tables"]["agreement"]}
    assert {"pigeonhole", "parity", "planted 3-SAT", "random 3-SAT m/n=2"} <= fams
    assert sum(r["disagree"] for r in sec["tables"]["agreement"]) == 0
    assert len(sec["cell_keys"]) == 2 and (tmp_path / "reduction_phase_transition.png").exists()
    assert "peaks at m/n" in capsys.readouterr().out


@pytest.mark.parametrize("extra,msg", [
    (["--ns", "2"], "--ns: expected numbers of variables >= 3, got 2"),
    (["--densities", "0"], "--densities: expected positive clause densities"),
    (["--formulas", "0"], "--formulas: expected an integer >= 1"),
    (["--time-limit", "0"], "--time-limit: expected a positive number of seconds"),
    (["--restarts", "0"], "--restarts: the phase-transition attacks need >= 1 restart"),
    (["--dimacs", "x.cnf"], "--dimacs: the phase-transition experiment draws random 3-SAT formulas"),
], ids=["ns", "densities", "formulas", "time-limit", "restarts", "dimacs"])
def test_cli_phase_transition_bad_flags_exit_2(tmp_path, capsys, extra, msg):
    rc = main(["reduction", "--experiment", "phase-transition", "--out", str(tmp_path / "o"), *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and msg in err[0]
    assert not (tmp_path / "o" / "results.json").exists()
