"""The README's command examples run as written.

The default suite checks every example line against the real argument parser (every flag and value
is accepted; every file it names exists) and runs the cheap ones at a smaller size in-process; with
``-m slow`` every example runs exactly as written (only ``--out`` moved into a temporary folder), in
a subprocess from the repository's root, and must exit 0 — or 2 for the one the README says is
refused.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from empirics.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _block_after(marker: str) -> list[str]:
    """The command lines (comments stripped, continuation lines joined) of the first shell block after ``marker``."""
    text = (ROOT / "README.md").read_text()
    assert marker in text, f"README lost the block after {marker!r}"
    body = re.search(r"^```(?:bash|sh)\n(.*?)^```$", text.split(marker, 1)[1], flags=re.S | re.M).group(1)
    body = body.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in body.splitlines() if line.strip()]


EXAMPLES = _block_after("Examples, each runnable as written")
CHECK_EXAMPLES = _block_after("## Check your own defense\n")
ALL = EXAMPLES + CHECK_EXAMPLES
REFUSED = {"make_huge"}  # the README says this one is refused (memory guard): exit 2


def _argv(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[0] == "invlimits", line
    return words[1:]


def test_the_blocks_were_found():
    assert len(EXAMPLES) >= 12 and len(CHECK_EXAMPLES) >= 4
    commands = {_argv(x)[0] for x in ALL if x.startswith("invlimits")}
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    assert subcommands <= commands, f"no README example for {sorted(subcommands - commands)}"


@pytest.mark.parametrize("line", ALL)
def test_every_example_parses_and_names_existing_files(line):
    if line.startswith("python "):
        assert (ROOT / shlex.split(line)[1]).is_file(), line
        return
    argv = _argv(line)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse refused a flag or value the README shows
        pytest.fail(f"the README's example does not parse (exit {exc.code}): {line}")
    for word in argv[1:]:
        path = word.split(":", 1)[0] if word.endswith(tuple(f":{f}" for f in ("make_encoder", "make_linear", "make_huge"))) else word
        if path.endswith((".py", ".toml")):
            assert (ROOT / path).is_file(), f"{line}: {path} does not exist"
    assert args.command == argv[0]


def _run(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = [str(tmp_path / a[len("runs/"):]) if a.startswith("runs/") else a for a in argv]
    return main(argv)


def test_small_train_then_records_csv(tmp_path, monkeypatch, capsys):
    """The train example at 1 epoch, then the records example on its folder (a CSV with its row)."""
    train = next(x for x in EXAMPLES if x.startswith("invlimits train"))
    records = next(x for x in EXAMPLES if x.startswith("invlimits records"))
    assert _run(_argv(train) + ["--epochs", "1", "--quiet"], tmp_path, monkeypatch) in (0, 1)  # 1 epoch may stay near chance
    assert _run(_argv(records), tmp_path, monkeypatch) == 0
    csv = (tmp_path / "train-records.csv").read_text().splitlines()
    assert len(csv) == 2 and "config" in csv[0]


def test_refused_example_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    line = next(x for x in CHECK_EXAMPLES if "make_huge" in x)
    assert _run(_argv(line) + ["--quiet"], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not enough memory" in err[0] and "Traceback" not in err[0]


def test_sweep_example_dry_run(tmp_path, monkeypatch, capsys):
    line = next(x for x in EXAMPLES if x.startswith("invlimits sweep"))
    assert _run(_argv(line) + ["--dry-run"], tmp_path, monkeypatch) == 0
    assert "8" in capsys.readouterr().out  # the README says 8 cells


def test_theory_example(tmp_path, monkeypatch):
    line = next(x for x in EXAMPLES if x.startswith("invlimits theory"))
    assert _run(_argv(line) + ["--quiet"], tmp_path, monkeypatch) == 0
    assert (tmp_path / "theory" / "results.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("line", ALL)
def test_every_example_runs_as_written(line, tmp_path):
    """As written, from the repository's root; only ``runs/`` is moved into a temporary folder."""
    words = [str(tmp_path / w[len("runs/"):]) if w.startswith("runs/") else w for w in shlex.split(line)]
    if words[0] == "invlimits":
        words = [sys.executable, "-c", "import sys; from empirics.cli import main; sys.exit(main())"] + words[1:]
    elif words[0] == "python":
        words[0] = sys.executable
    if words[2:3] and "records" in line:  # its folder: a run of the train example (1 epoch is enough here)
        subprocess.run([sys.executable, "-c", "import sys; from empirics.cli import main; sys.exit(main())",
                        "train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path / "train")],
                       cwd=ROOT, check=False)
    if "--weights" in line:  # the line before it writes the weights
        subprocess.run([sys.executable, "examples/my_encoder.py", str(tmp_path / "encoder.pt")], cwd=ROOT, check=True)
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True)
    expected = 2 if any(r in line for r in REFUSED) else 0
    assert proc.returncode == expected, f"{line}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
