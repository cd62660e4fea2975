"""`invlimits theory`: the battery runs, every check passes, results.json and the figure are written."""

import json

from empirics import cli


def test_invlimits_theory_quick(tmp_path, capsys):
    rc = cli.main(["theory", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    res = json.loads((tmp_path / "results.json").read_text())
    sec = res["sections"]["theory"]
    assert res["passed"] and sec["passed"] and sec["n_failed"] == 0
    assert sec["n_checks"] >= 40
    names = {c["check"] for c in sec["checks"]}
    assert any(n.startswith("equality case") for n in names)
    assert any("Thm 2 as printed = Huber route" in n for n in names)
    assert any(n.startswith("sympy:") for n in names)
    assert (tmp_path / "theory_bounds_vs_truth.png").stat().st_size > 10_000
    assert (tmp_path / "report.md").exists()
    assert f"wrote {tmp_path / 'results.json'}" in out


def test_invlimits_theory_bad_argument_is_usage_error(tmp_path, capsys):
    rc = cli.main(["theory", "--n-mc", "10", "--out", str(tmp_path)])
    assert rc == 2
    assert "--n-mc must be >= 100; got 10" in capsys.readouterr().err
