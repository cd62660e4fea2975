"""The layering issue 20 set up, held by benchmarks/structure.py: no import cycles (module-level or
deferred), no import from the data layer up into report/cli/sections, and every import inside a
function says why it is deferred."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _structure():
    spec = importlib.util.spec_from_file_location("structure", ROOT / "benchmarks" / "structure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_cycles_no_upward_imports_every_deferred_import_justified():
    m = _structure().measure(ROOT)
    assert m["cycles_top"] == [] and m["cycles_all"] == []
    assert m["upward"] == []
    assert [d[:3] for d in m["deferred"] if not d[3]] == []
