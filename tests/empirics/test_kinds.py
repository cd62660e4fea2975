"""Kinds of run: found by listing ``empirics.kinds``, read by a fresh process, added as one file.

* every kind's record, written here, is read back by a *fresh* process that imported nothing but
  the store (a kind must not depend on some other module having been imported first);
* a toy kind that lives in one file — configuration, result, runner, sweep parameters, table — is
  stored, run, swept and tabulated without touching any other file of the package;
* the sweep's parameter table is the kinds' sweep dataclass fields.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from empirics.records import Config, Kind, Result, kinds
from empirics.store import RecordStore, make_record

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import config_keys  # noqa: E402

ALL_KINDS = {"train", "train-attack", "defense-table", "entropy-vs-mse", "synthetic-bounds", "optimality",
             "dataset-attack", "check-defense", "phase-transition"}


def test_every_kind_is_one_module_with_config_result_and_a_table_or_runner():
    ks = kinds()
    assert set(ks) == ALL_KINDS
    for name, k in ks.items():
        assert isinstance(k, Kind) and issubclass(k.config, Config) and issubclass(k.result, Result)
        assert k.config.kind == name
        assert k.config.__module__.startswith("empirics.kinds.")  # defined in the kinds' package (a
        assert k.result.__module__.startswith("empirics.kinds.")  # defense-table shares train-attack's result)
        # optimality and check-defense are recorded by their library functions (run_optimality shares one
        # test set across attacks; check_defense_record checks a library object the configuration only hashes)
        assert (k.run is None) == (name in ("optimality", "check-defense"))


def _dummy(tp):
    """A value of annotation ``tp`` (JSON-plain)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return None
    if tp is float:
        return 0.25
    if tp is int:
        return 3
    if tp is bool:
        return False
    if tp is str:
        return "x"
    if tp is list or origin is list:
        return []
    return {}


def _result(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: _dummy(hints[f.name]) for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _one_config_per_kind() -> dict:
    out = {}
    for cfg in config_keys.canonical_configs().values():
        out.setdefault(cfg.kind, cfg)
    return out


def test_a_fresh_process_reads_every_valid_record_of_every_kind(tmp_path):
    """Records of all nine kinds (ok, and a failed one) written here; a new interpreter that
    imports only ``empirics.store`` reads every one and quarantines none."""
    store = RecordStore(tmp_path / "records")
    written = {}
    for kind, cfg in _one_config_per_kind().items():
        rec = store.put(make_record(cfg, "ok", result=_result(kinds()[kind].result)))
        written[rec.key] = kind
    failed = _one_config_per_kind()["train"].replace(train=_one_config_per_kind()["train"].train.replace(seed=7))
    written[store.put(make_record(failed, "failed", result={"accuracy": 0.1}, reason="near chance")).key] = "train"
    assert set(written.values()) == ALL_KINDS
    code = textwrap.dedent(f"""
        import json, sys, warnings
        warnings.simplefilter("error")
        from empirics.store import RecordStore
        st = RecordStore({str(tmp_path / "records")!r})
        recs = st.scan()
        print(json.dumps({{"kinds": {{k: r.kind for k, r in recs.items()}}, "quarantined": st.quarantined,
                          "torch": "torch" in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["quarantined"] == [] and got["kinds"] == written
    assert not (tmp_path / "records" / "quarantine").exists()


TOY = '''
"""Kind ``toy``: the sum 1 + ... + n, scaled — a whole kind in one file."""
from dataclasses import dataclass
from typing import ClassVar

from empirics.records import Config, Kind, Outcome, Result
from empirics.results import Section
from empirics.sweep.params import param


@dataclass(frozen=True, kw_only=True)
class ToyConfig(Config):
    kind: ClassVar[str] = "toy"
    n: int
    scale: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ToyResult(Result):
    total: float


def run(cfg, ctx):
    return Outcome("ok", ToyResult(total=cfg.scale * cfg.n * (cfg.n + 1) / 2))


@dataclass(frozen=True, kw_only=True)
class ToySweep:
    n: int = param("terms of the sum", 3, minimum=1)
    scale: float = param("a factor", 1.0, positive=True, axis=(1.0, 2.0))

    def configs(self):
        return [ToyConfig(n=self.n, scale=self.scale)]


def sections(records, out):
    sec = Section("toy", "Toy sums")
    sec.tables["sums"] = [{"n": r.config["n"], "scale": r.config["scale"], "total": r.result["total"]}
                          for r in records]
    return [sec]


KIND = Kind(config=ToyConfig, result=ToyResult, run=run, sweep=ToySweep, sections=sections)
'''

TOY_DRIVER = '''
import json, sys
import empirics.kinds
empirics.kinds.__path__.append(sys.argv[1])      # as if toy.py were a new file in empirics/kinds/
from empirics.experiments import execute_all
from empirics.records import kinds
from empirics.store import RecordStore
from empirics.sweep.collect import collect_sections
from empirics.sweep.spec import expand, params, parse_spec

store = RecordStore(sys.argv[2])
if sys.argv[3] == "run":
    spec = parse_spec({"sweep": {"experiment": "toy"}, "grid": {"n": [2, 4]}})
    cells = expand(spec)                          # n from the grid, scale from its default axis
    recs = execute_all([c.config for c in cells], store)
    again = execute_all([c.config for c in cells], store)   # reused: the same records
    (sec,) = collect_sections(spec, cells, recs, sys.argv[2])
    try:
        parse_spec({"sweep": {"experiment": "toy"}, "grid": {"n": [0]}})
        bad = ""
    except ValueError as exc:
        bad = str(exc)
    print(json.dumps({"table": sec.tables["sums"], "same": [a.to_dict() == b.to_dict() for a, b in zip(recs, again)],
                      "params": {k: v[0] for k, v in params().items() if "toy" in v[1]}, "bad": bad,
                      "kinds": sorted(kinds())}))
else:                                            # a fresh process reads the toy records
    print(json.dumps(sorted((r.kind, r.result["total"]) for r in store.scan().values())))
'''


def test_a_new_kind_touches_one_file(tmp_path):
    """The toy kind is one module; with it in the kinds' package the store, the runner (and its
    reuse), sweeps (its fields are the parameter table, with ranges checked) and the collector
    (its table) all work — no other file is edited."""
    kind_dir = tmp_path / "kinds"
    kind_dir.mkdir()
    (kind_dir / "toy.py").write_text(TOY)
    driver = tmp_path / "driver.py"
    driver.write_text(TOY_DRIVER)
    records = tmp_path / "records"
    out = subprocess.run([sys.executable, str(driver), str(kind_dir), str(records), "run"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert "toy" in got["kinds"] and ALL_KINDS <= set(got["kinds"])
    assert got["params"] == {"n": "int", "scale": "float"}
    assert "grid.n[0]" in got["bad"] and "positive integer" in got["bad"]
    assert sorted((r["n"], r["scale"], r["total"]) for r in got["table"]) == \
        [(2, 1.0, 3.0), (2, 2.0, 6.0), (4, 1.0, 10.0), (4, 2.0, 20.0)]
    assert all(got["same"])
    fresh = subprocess.run([sys.executable, str(driver), str(kind_dir), str(records), "read"], capture_output=True,
                           text=True, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert json.loads(fresh.stdout) == [["toy", 3.0], ["toy", 6.0], ["toy", 10.0], ["toy", 20.0]]


def test_without_its_module_a_kinds_records_are_quarantined_not_dropped(tmp_path):
    """The same toy records read by a process that does not have the toy module: moved aside with
    the reason 'unknown kind', never silently dropped."""
    test_a_new_kind_touches_one_file(tmp_path)
    st = RecordStore(tmp_path / "records")
    with pytest.warns(UserWarning, match="unknown kind 'toy'"):
        assert st.scan() == {}
    assert len(list((tmp_path / "records" / "quarantine").glob("*.json"))) == 4


def test_the_sweep_parameter_table_is_the_kinds_fields():
    from empirics.sweep.params import field_type
    from empirics.sweep.spec import experiments, params
    table = params()
    for exp, k in experiments().items():
        names = {f.name for f in dataclasses.fields(k.sweep)}
        assert names == {p for p, (_, exps, _) in table.items() if exp in exps}
        for f in dataclasses.fields(k.sweep):
            assert table[f.name][0] == field_type(k.sweep, f.name) and table[f.name][2]  # a type and a help line
    assert set(experiments()) == {"entropy-vs-mse", "defense-table", "train", "phase-transition"}
