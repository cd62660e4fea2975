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


def test_append_jsonl_cuts_a_torn_tail_before_appending(tmp_path):
    from empirics.report import append_jsonl, read_jsonl

    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as fh:
        fh.write('{"a": 2, "b"')  # an interrupted write
    assert read_jsonl(path) == [{"a": 1}]
    append_jsonl(path, {"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]
    assert path.read_text().endswith('{"a": 3}\n')
