"""The command-line foundation: every subcommand writes results.json and says where."""

import json
import subprocess
import sys

import pytest

from empirics import cli


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "verify" in out


def test_import_theory_does_not_import_torch_or_pysat():
    code = ("import sys, theory, reduction, empirics, empirics.report, empirics.cli; "
            "bad = [m for m in ('torch', 'pysat') if m in sys.modules]; print(bad)")
    # `reduction` may import pysat; theory, empirics.cli and empirics.report must not import torch.
    code = ("import sys, theory; bad = [m for m in ('torch', 'pysat') if m in sys.modules]; "
            "import empirics.cli; bad += [m for m in ('torch',) if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_subcommand_is_usage_error():
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2


@pytest.mark.parametrize("exc, code, text", [
    (ValueError("bad thing"), 2, "error: bad thing"),
    (FloatingPointError("non-finite loss at epoch 3"), 2, "training diverged"),
    (KeyboardInterrupt(), 130, "run the same command again to resume"),
])
def test_errors_and_interrupts_are_one_clear_line(monkeypatch, tmp_path, capsys, exc, code, text):
    class _Section:
        @staticmethod
        def run(args):
            raise exc
    monkeypatch.setattr(cli, "_load", lambda name: _Section)
    assert cli.main(["bench", "--out", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_a_failing_check_gives_exit_code_1_and_a_fail_report(monkeypatch, tmp_path, capsys):
    from empirics.report import Section

    class _Section:
        @staticmethod
        def run(args):
            sec = Section("demo", "a section with one failing check")
            sec.add("value >= bound", "instance", 1.0, 2.0, -1.0, False)
            sec.add("value >= bound", "other", 3.0, 2.0, 1.0, True)
            return [sec]
    monkeypatch.setattr(cli, "_load", lambda name: _Section)
    assert cli.main(["bench", "--out", str(tmp_path)]) == 1
    assert "FAIL: 1/2 checks passed" in capsys.readouterr().out
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["passed"] is False
    assert "**Overall: FAIL**" in (tmp_path / "report.md").read_text()


def test_building_the_parser_does_not_import_torch():
    code = ("import sys; from empirics import cli; cli.build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("invlimits ")


def _no_work(monkeypatch):
    calls = []

    class _Section:
        @staticmethod
        def run(args):
            calls.append(1)
            return []
    monkeypatch.setattr(cli, "_load", lambda name: _Section)
    return calls


@pytest.mark.parametrize("make, message", [
    (lambda p: (p.write_text("x"), p)[1], "is not a directory"),
    (lambda p: (p.write_text("x"), p / "sub")[1], "is a file"),
    (lambda p: __import__("pathlib").Path("/proc/invlimits-cannot-create/x"), "cannot create"),
    (lambda p: __import__("pathlib").Path("/proc"), "not writable"),
])
def test_bad_out_is_one_line_exit_2_before_any_work(tmp_path, monkeypatch, capsys, make, message):
    calls = _no_work(monkeypatch)
    out = make(tmp_path / "target")
    assert cli.main(["bench", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not calls


def test_out_of_another_command_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    calls = _no_work(monkeypatch)
    (tmp_path / "results.json").write_text('{"command": "theory"}')
    assert cli.main(["bench", "--out", str(tmp_path)]) == 2
    assert "invlimits theory" in capsys.readouterr().err and not calls
    assert cli.main(["bench", "--out", str(tmp_path), "--force"]) == 0 and calls


def test_report_links_figures_relative_to_its_folder_and_stale_figures_go(tmp_path, monkeypatch):
    """With a relative --out (the README's own form) every image link resolves from report.md's
    folder; a figure an earlier run of the command wrote and this run did not is removed."""
    import re
    from pathlib import Path

    from empirics.report import Section
    monkeypatch.chdir(tmp_path)
    figs = ["a.png", "b.png"]

    class _Section:
        @staticmethod
        def run(args):
            sec = Section("demo", "demo")
            for f in figs:
                p = Path(args.out) / f
                p.write_bytes(b"\x89PNG")
                sec.figures.append(str(p))
            return [sec]
    monkeypatch.setattr(cli, "_load", lambda name: _Section)
    assert cli.main(["bench", "--out", "runs/rel"]) == 0
    report = (tmp_path / "runs/rel/report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links == ["a.png", "b.png"]
    assert all((tmp_path / "runs/rel" / link).is_file() for link in links)
    figs[:] = ["b.png"]
    assert cli.main(["bench", "--out", "runs/rel"]) == 0
    assert not (tmp_path / "runs/rel/a.png").exists() and (tmp_path / "runs/rel/b.png").exists()


def test_no_pass_over_zero_checks(tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    assert "PASS" not in capsys.readouterr().out
    assert "Overall: PASS" not in (tmp_path / "report.md").read_text()


def test_check_rows_keep_margin_sign_and_verdict_together():
    from empirics.report import CheckError, Section
    sec = Section("x", "x")
    with pytest.raises(CheckError):
        sec.add("v >= b", "i", 1.0, 2.0, 0.5, False)
    with pytest.raises(CheckError):
        sec.add("v >= b", "i", 1.0, 2.0, -0.5, True)
