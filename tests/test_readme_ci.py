"""README's two commands and .ci/run must not drift apart."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_opens_with_two_shell_blocks():
    blocks = _blocks()
    assert len(blocks) >= 2
    (lang1, b1), (lang2, b2) = blocks[:2]
    assert lang1 == lang2 == "bash"
    assert "python3 -m venv .venv" in b1 and "invlimits verify" in b1
    assert "torch==2.13.0" in b1  # the CPU wheel on disk; a bare torch pulls CUDA
    assert "pytest" in b2 and b2.strip().startswith(". .venv/bin/activate")


def test_ci_runs_the_readme_blocks_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'bash -euo pipefail -c "$(block 1)"' in ci
    assert 'bash -euo pipefail -c "$(block 2)"' in ci
    assert "invlimits verify --quick" in ci


def test_readme_library_block_runs(tmp_path):
    """The README's ```python block is executed as written (it must never drift from the API)."""
    import os
    import subprocess
    import sys

    code = [b for lang, b in _blocks() if lang == "python"]
    assert len(code) >= 1 and "import theory, reduction" in code[0]  # the library block comes first
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code[0]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    mmse, bound = (float(v) for v in lines[0].split(">="))
    assert mmse >= bound > 0
    # an affine encoder on the known mixture: certified, and no guaranteed floor significantly violated
    assert lines[-1].startswith("certified:") and " 0 violated " in lines[-1]


def test_readme_errata_are_the_one_source():
    """README's errata block is exactly what every report.md renders (empirics/errata.py)."""
    from empirics.errata import README_BEGIN, README_END, errata_markdown
    text = (ROOT / "README.md").read_text()
    block = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert block.strip() == errata_markdown().strip()


def test_readme_dataset_table_is_the_registry():
    from empirics.registry import readme_table
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- datasets:begin -->", 1)[1].split("<!-- datasets:end -->", 1)[0]
    assert block.strip() == readme_table().strip()


def test_readme_own_loop_block_runs(tmp_path):
    """The README's ```python block with ``defend`` in a plain PyTorch loop runs as written.
    Accuracy threshold 0.5 (chance 0.1): over seeds 0, 1, 2 of the block the held-out accuracy
    was 0.78, 0.87, 0.88."""
    import os
    import subprocess
    import sys

    code = [b for lang, b in _blocks() if lang == "python" and "defend(" in b]
    assert len(code) == 1
    assert len(code[0].strip().splitlines()) <= 30  # a short loop, as promised
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code[0]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    acc = float(line.split("held-out accuracy ")[1].split(";")[0])
    lc = float(line.split("last batch ")[1].split(" nats")[0])
    assert acc > 0.5 and lc > 0, line
