"""Figures are made and written in one place (empirics.figures), without pyplot or a backend switch."""

import subprocess
import sys
from pathlib import Path

import empirics
from empirics.figures import colour_cycle, new_figure, save_figure

ROOT = Path(empirics.__file__).resolve().parent


def test_save_figure_writes_the_image_and_makes_its_folder(tmp_path):
    fig = new_figure((2.0, 1.5))
    fig.subplots().plot([0, 1], [1, 0], color=colour_cycle()[0])
    path = tmp_path / "a" / "b" / "f.png"
    assert save_figure(fig, path, dpi=50) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drawing_leaves_pyplot_and_the_backend_alone(tmp_path):
    code = ("import matplotlib, sys; before = matplotlib.get_backend(); "
            "from empirics.figures import new_figure, save_figure; "
            f"save_figure(new_figure((1, 1)), {str(tmp_path / 'g.png')!r}); "
            "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend() == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_no_other_module_draws_through_pyplot_or_switches_the_backend():
    offenders = []
    for p in ROOT.rglob("*.py"):
        text = p.read_text()
        if p.name in ("figures.py", "cli.py"):  # the CLI picks Agg once, for the whole command
            continue
        if "pyplot" in text or "matplotlib.use(" in text or "from matplotlib.figure import" in text:
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []
