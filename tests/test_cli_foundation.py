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
