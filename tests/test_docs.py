"""The design notes live in the repository, and every reference to them resolves.

The code cites the notes by path ("docs/ground-truths.md", "docs/errata.md" ...); a reader of the
repository must be able to follow every citation, and the errata page must be the one list of
``empirics/errata.py`` (as the README's block is)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout.split()
TEXT = [f for f in FILES if f.endswith((".py", ".md", ".toml")) and (ROOT / f).is_file()]


def test_no_reference_to_a_design_file_outside_the_repository():
    bad = [f for f in TEXT if "DESIGN.md" in (ROOT / f).read_text(errors="replace") and f != "tests/test_docs.py"]
    assert bad == []


@pytest.mark.parametrize("name", ["design", "ground-truths", "errata", "conventions"])
def test_the_four_notes_exist(name):
    assert (ROOT / "docs" / f"{name}.md").is_file()


def test_every_cited_doc_path_exists():
    cited = set()
    for f in TEXT:
        cited |= set(re.findall(r"\b(docs/[\w-]+\.md)", (ROOT / f).read_text(errors="replace")))
    assert cited, "the code cites the notes"
    assert sorted(p for p in cited if not (ROOT / p).is_file()) == []


def test_markdown_links_resolve():
    for f in ["CONTRIBUTING.md", *[f for f in FILES if f.startswith("docs/")]]:
        text = (ROOT / f).read_text()
        for target in re.findall(r"\]\(([^)#:]+)\)", text):
            assert (ROOT / f).parent.joinpath(target).resolve().exists(), (f, target)


def test_docs_errata_is_the_one_source():
    from empirics.errata import README_BEGIN, README_END, errata_markdown
    text = (ROOT / "docs" / "errata.md").read_text()
    block = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert block.strip() == errata_markdown().strip()


def test_packages_declare_their_types():
    for pkg in ("theory", "reduction", "empirics"):
        assert (ROOT / pkg / "py.typed").is_file()


def test_readme_sweep_parameter_table_is_the_kinds_fields():
    from empirics.sweep.spec import params_table
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- sweep-params:begin", 1)[1].split("-->", 1)[1].split("<!-- sweep-params:end -->", 1)[0]
    assert block.strip() == params_table().strip()
