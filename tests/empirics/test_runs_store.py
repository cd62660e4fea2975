"""Runs as data: configuration keys, record validation, the record store and its quarantine."""

import json
import math
import os
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from empirics.checks import near_chance, passing_accuracy
from empirics.kinds.defense_table import DefenseTableConfig
from empirics.kinds.entropy_mse import EntropyMseConfig
from empirics.kinds.train import TrainRunConfig
from empirics.records import Record, RecordError, config_from_dict, diff_configs
from empirics.specs import AttackSpec, DefenseSpec, TrainConfig
from empirics.store import RecordStore, StoreWarning, make_record


def _train(**kw):
    base = dict(dataset="digits", defenses=("noise:sigma=0.1",), epochs=2)
    base.update(kw)
    return TrainRunConfig(train=TrainConfig(**base))


def _ok(cfg, acc=0.9):
    return make_record(cfg, "ok", result={"accuracy": acc, "chance": 0.1, "n_test": 450})


# ----------------------------------------------------------------------------- keys

@pytest.mark.parametrize("change", [
    dict(defenses=("noise:sigma=2.0",)), dict(epochs=3), dict(lr=0.5), dict(batch_size=32), dict(seed=1),
    dict(preset="lfw"), dict(bottleneck=4), dict(optimizer="sgd"), dict(data_seed=1), dict(weight_decay=1e-4),
    dict(defenses=("noise:sigma=0.1", "cem:lam=0.01")), dict(defenses=("noise:sigma=0.1", "cem:lam=0.01,k_per_class=2")),
])
def test_every_setting_changes_the_key(change):
    assert _train().key() != _train(**change).key()


def test_key_is_stable_and_defaults_are_explicit():
    a = _train(defenses=("noise:sigma=0.1",))
    b = _train(defenses=(DefenseSpec.parse(("noise", {"sigma": 0.1})),))
    assert a.key() == b.key() == TrainRunConfig.from_dict(json.loads(json.dumps(a.to_dict()))).key()
    cem = DefenseSpec.parse("cem:lam=0.01")
    assert dict(cem.params)["k_per_class"] == 3  # defaults filled in: a changed default changes the key
    assert dict(DefenseSpec.parse("arl:alpha=0.5").params)["seed"] is None  # derived from the run's seed


def test_key_depends_on_attack_settings_and_kind():
    t = _train().train
    a = EntropyMseConfig(train=t, attack=("decoder", {"epochs": 2}), sigma=0.1, lam=0.0)
    b = EntropyMseConfig(train=t, attack=("decoder", {"epochs": 10}), sigma=0.1, lam=0.0)
    c = DefenseTableConfig(train=t, attacks=("decoder",), baseline="noise", cem=False, lam=0.0)
    assert len({a.key(), b.key(), c.key()}) == 3


@pytest.mark.parametrize("spec, message", [
    ("nosuch:x=1", "expected one of"),
    ("noise:sgma=1", "unknown parameter"),
    ("noise:sigma", "NAME"),
    ("cem:lam=0.1,k_per_clas=2", "valid:"),
])
def test_bad_defense_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        DefenseSpec.parse(spec)


def test_bad_attack_specs():
    with pytest.raises(ValueError, match="unknown parameter"):
        AttackSpec.parse("decoder", epoch=3)
    with pytest.raises(ValueError, match="expected one of"):
        AttackSpec.parse("magic")


@pytest.mark.parametrize("field, value, message", [
    ("epochs", "3", "expected an integer"), ("epochs", True, "expected an integer"), ("lr", "fast", "number"),
    ("dataset", 3, "string"), ("defenses", {"a": 1}, "list"), ("nonsense", 1, "unknown field"),
])
def test_config_from_dict_validates(field, value, message):
    d = _train().to_dict()
    d["train"][field] = value
    with pytest.raises(RecordError, match=message):
        config_from_dict(d)


def test_diff_configs_names_nested_settings():
    a, b = _train().to_dict(), _train(defenses=("noise:sigma=2.0",), lr=0.5).to_dict()
    assert diff_configs(a, b) == ["train.defenses[0].params.sigma: 0.1 → 2.0", "train.lr: 0.001 → 0.5"]


# ----------------------------------------------------------------------------- failed models

def test_passing_accuracy_is_the_binomial_critical_value():
    from scipy.stats import binom
    for chance, n in ((0.1, 450), (0.5, 50), (0.2, 1000)):
        k = round(passing_accuracy(chance, n) * n)
        assert k / n > chance + 0.02 and binom.sf(k - 1, n, chance) < 1e-3  # k passes both criteria
        assert (k - 1) / n <= chance + 0.02 or binom.sf(k - 2, n, chance) >= 1e-3  # k - 1 fails one


@pytest.mark.parametrize("acc, failed", [(0.1024, True), (0.12, True), (66 / 450, True), (67 / 450, False), (0.9, False),
                                         (math.nan, True)])
def test_near_chance(acc, failed):
    assert bool(near_chance(acc, 0.1, 450)) is failed


# ----------------------------------------------------------------------------- the store

def test_store_roundtrip_and_reuse(tmp_path):
    st_ = RecordStore(tmp_path)
    c = _train()
    assert st_.get(c) is None and not st_.done(c)
    st_.put(_ok(c))
    assert st_.done(c) and st_.get(c).result["accuracy"] == 0.9
    assert st_.get(_train(epochs=3)) is None  # a record with another configuration is never reused
    assert set(st_.scan()) == {c.key()}
    assert (tmp_path / f"{c.key()}.json").is_file()


def test_error_records_are_retried_failed_ones_are_final(tmp_path):
    st_ = RecordStore(tmp_path)
    a, b = _train(seed=1), _train(seed=2)
    st_.put(make_record(a, "error", reason="RuntimeError: out of memory"))
    st_.put(make_record(b, "failed", reason="near chance", result={"accuracy": 0.1}))
    assert not st_.done(a) and st_.done(b)


CORRUPTIONS = {
    "garbage": b"this is not json\n",
    "torn": None,  # the first half of a valid record
    "binary": bytes(range(256)) * 4,
    "empty": b"",
    "missing field": "missing",
    "mistyped field": "mistyped",
    "key mismatch": "key",
    "bad result": "result",
    "edited result": "edited",  # still valid JSON and a valid result: only the digest tells
}


def _corrupt(path: os.PathLike, how, valid: dict):
    blob = CORRUPTIONS[how]
    if blob is None:
        text = json.dumps(valid)
        path.write_text(text[: len(text) // 2])
        return
    if isinstance(blob, bytes):
        path.write_bytes(blob)
        return
    d = json.loads(json.dumps(valid))
    if blob == "missing":
        del d["status"]
    elif blob == "mistyped":
        d["seconds"] = "fast"
    elif blob == "key":
        d["config"]["train"]["lr"] = 0.5  # the stored key no longer matches its configuration
    elif blob == "result":
        d["result"]["accuracy"] = "high"
    elif blob == "edited":
        d["result"]["accuracy"] = 0.99
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_invalid_records_are_quarantined_with_a_warning_naming_the_file(tmp_path, how):
    st_ = RecordStore(tmp_path)
    cfgs = [_train(seed=s) for s in range(3)]
    for c in cfgs:
        st_.put(_ok(c))
    victim = tmp_path / f"{cfgs[1].key()}.json"
    _corrupt(victim, how, json.loads(victim.read_text()))
    with pytest.warns(StoreWarning, match=cfgs[1].key()):
        found = st_.scan()
    assert set(found) == {cfgs[0].key(), cfgs[2].key()}  # nothing else lost
    q = list((tmp_path / "quarantine").iterdir())
    assert any(p.name == victim.name for p in q) and any(p.name.endswith(".why") for p in q)
    assert not victim.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(st_.scan()) == set(found)  # quarantined once: a rescan is silent


def test_stray_files_are_quarantined_and_tmp_files_ignored(tmp_path):
    st_ = RecordStore(tmp_path)
    st_.put(_ok(_train()))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".abc.123.tmp").write_text("{half")  # a write in flight
    with pytest.warns(StoreWarning, match="notes.txt"):
        assert len(st_.scan()) == 1
    assert (tmp_path / ".abc.123.tmp").exists()


def test_a_record_under_the_wrong_file_name_is_quarantined(tmp_path):
    st_ = RecordStore(tmp_path)
    a, b = _train(seed=1), _train(seed=2)
    st_.put(_ok(a))
    os.replace(tmp_path / f"{a.key()}.json", tmp_path / f"{b.key()}.json")
    with pytest.warns(StoreWarning, match="does not match"):
        assert st_.get(b) is None


# Hypothesis: random sequences of operations never lose a valid record nor duplicate a key.
OPS = st.lists(st.tuples(st.sampled_from(["append", "torn", "garbage", "corrupt", "rerun"]),
                         st.integers(0, 5)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_store_property_never_loses_or_duplicates(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("store")
    st_ = RecordStore(root)
    valid = {}  # key -> record that must be found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        for op, i in ops:
            c = _train(seed=i)
            if op in ("append", "rerun"):
                if op == "rerun" and st_.done(c):  # resume: a done cell is not run again
                    continue
                valid[c.key()] = st_.put(_ok(c, acc=0.5 + i / 100))
            elif op == "torn":  # a crashed writer: a temporary file left behind
                (root / f".{c.key()}.999.tmp").write_text('{"schema_version": 2, "ke')
            elif op == "garbage":  # someone drops a garbage file into the store
                (root / f"garbage{i}.json").write_bytes(b"\x00\xff garbage")
            elif op == "corrupt" and (root / f"{c.key()}.json").exists():
                (root / f"{c.key()}.json").write_text("{not json")
                valid.pop(c.key(), None)  # its cell must be recomputed
        found = st_.scan()
        assert set(valid) <= set(found)
        for k, rec in valid.items():
            assert found[k].result == rec.result
        names = [p.name for p in root.glob("*.json")]
        assert len(names) == len(set(names)) == len(found)
        # a rerun of every valid cell adds nothing
        before = sorted(p.name for p in root.iterdir())
        for k in valid:
            assert st_.done(k)
        assert sorted(p.name for p in root.iterdir()) == before


def test_record_validate_rejects_wrong_schema(tmp_path):
    d = _ok(_train()).to_dict()
    d["schema_version"] = 1
    with pytest.raises(RecordError, match="schema_version"):
        Record.validate(d)


# ----------------------------------------------------------------------------- content digests

def test_a_hand_edited_record_is_quarantined_with_the_reason(tmp_path):
    """accuracy 0.8263 -> 0.99, still valid JSON with a valid result: the digest over configuration
    and result refuses it, with the reason in the warning and beside the quarantined file."""
    st_ = RecordStore(tmp_path)
    c = _train()
    st_.put(_ok(c, acc=0.8263))
    path = tmp_path / f"{c.key()}.json"
    d = json.loads(path.read_text())
    assert d["digest"] and d["digest_note"] == ""
    d["result"]["accuracy"] = 0.99
    path.write_text(json.dumps(d, indent=1))
    with pytest.warns(StoreWarning, match="does not match its digest"):
        assert st_.get(c) is None
    why = (tmp_path / "quarantine" / f"{path.name}.why").read_text()
    assert "edited after it was written" in why and st_.quarantined[0][0] == str(path)
    assert not path.exists() and (tmp_path / "quarantine" / path.name).exists()


@pytest.mark.parametrize("field, value", [("config", None), ("status", "failed"), ("reason", "x"), ("seconds", 9.5),
                                          ("device", "cuda:7"), ("digest_note", "")])
def test_every_field_is_covered_by_the_digest(field, value):
    d = _ok(_train()).to_dict()
    if field == "config":
        d["config"]["train"]["epochs"] = 3
        d["key"] = config_from_dict(d["config"]).key()  # a consistent key: only the digest can tell
    elif field == "digest_note":
        d = _ok(_train()).sealed("migrated").to_dict()
        d["digest_note"] = value  # hiding the note that the record is unverified
    else:
        d[field] = value
    with pytest.raises(RecordError, match="digest"):
        Record.validate(d)


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**12, 10**12)
RESULTS = st.recursive(FLOATS | st.text(max_size=5) | st.booleans() | st.none(),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                  max_size=4), max_leaves=20)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), RESULTS, max_size=5), FLOATS)
def test_digest_survives_the_round_trip_through_the_file(tmp_path_factory, extra, seconds):
    """Whatever a result holds (non-finite floats, big integers, unicode), the record read back from its
    file validates against the digest computed when it was written."""
    root = tmp_path_factory.mktemp("digest")
    st_ = RecordStore(root)
    c = _train()
    rec = make_record(c, "failed", result={"accuracy": 0.5, **extra}, seconds=float(seconds) if
                      seconds == seconds and abs(seconds) < 1e300 else 0.0)
    st_.put(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = st_.get(c)
    assert back is not None and back.digest == rec.digest and back.verified


def test_a_record_written_before_digests_is_migrated_with_a_warning_and_stays_marked(tmp_path):
    """A record of the previous version (no digest) keeps its key and result, gains a digest once
    (the file is rewritten) and is marked unverified; an edit after that is caught."""
    st_ = RecordStore(tmp_path)
    c = _train()
    path = tmp_path / f"{c.key()}.json"
    old = _ok(c, acc=0.8263).to_dict()
    del old["digest"], old["digest_note"]  # what the previous version wrote
    path.write_text(json.dumps(old, indent=1))
    with pytest.warns(StoreWarning, match="no content digest"):
        rec = st_.get(c)
    assert rec.key == c.key() and rec.result["accuracy"] == 0.8263 and not rec.verified
    assert "unverified" in rec.digest_note and rec.summary()["verified"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st_.get(c).digest == rec.digest  # migrated once: a second read is silent
    d = json.loads(path.read_text())
    d["result"]["accuracy"] = 0.99
    path.write_text(json.dumps(d))
    with pytest.warns(StoreWarning, match="digest"):
        assert st_.get(c) is None


def test_an_edited_cell_is_recomputed_once(tmp_path, monkeypatch):
    """Through the runner: the edited record is quarantined, its cell runs again (once), the others are reused."""
    import dataclasses as dc
    from typing import ClassVar

    from empirics import records as R
    from empirics.experiments import execute_all

    calls = []

    @dc.dataclass(frozen=True, kw_only=True)
    class SquareConfig(R.Config):
        kind: ClassVar[str] = "test-square"
        x: float

    @dc.dataclass(frozen=True, kw_only=True)
    class SquareResult(R.Result):
        y: float

    def run(cfg, ctx):
        calls.append(cfg.x)
        return R.Outcome("ok", SquareResult(y=cfg.x ** 2))

    monkeypatch.setitem(R._EXTRA, "test-square", R.Kind(config=SquareConfig, result=SquareResult, run=run))
    st_ = RecordStore(tmp_path)
    cfgs = [SquareConfig(x=float(i)) for i in range(3)]
    execute_all(cfgs, st_)
    path = tmp_path / f"{cfgs[1].key()}.json"
    d = json.loads(path.read_text())
    d["result"]["y"] = 99.0
    path.write_text(json.dumps(d))
    with pytest.warns(StoreWarning, match="digest"):
        recs = execute_all(cfgs, st_)
    assert calls == [0.0, 1.0, 2.0, 1.0] and [r.result["y"] for r in recs] == [0.0, 1.0, 4.0]
    execute_all(cfgs, st_)
    assert calls == [0.0, 1.0, 2.0, 1.0]


# ----------------------------------------------------------------------------- records as a table

def test_records_table_and_to_frame(tmp_path):
    pd = pytest.importorskip("pandas")
    from empirics.store import records_table
    st_ = RecordStore(tmp_path)
    for s in range(3):
        st_.put(_ok(_train(seed=s), acc=(0.8, 0.81, 0.82)[s]))
    st_.put(make_record(_train(seed=9), "error", reason="RuntimeError: x"))
    cols, rows = records_table(st_.scan().values())
    assert cols[:4] == ["key", "kind", "status", "reason"] and "config.train.seed" in cols
    df = st_.to_frame()
    assert isinstance(df, pd.DataFrame) and df.shape == (4, len(cols)) and list(df.columns) == cols
    ok = df[df.status == "ok"].sort_values("config.train.seed")
    assert ok["result.accuracy"].tolist() == [0.8, 0.81, 0.82] and ok["verified"].all()
    assert df.loc[df.status == "error", "result.accuracy"].isna().all()
    assert json.loads(ok["config.train.defenses"].iloc[0])[0]["name"] == "noise"  # lists as JSON text
    assert st_.to_frame(kind="nosuch").shape[0] == 0


def test_to_frame_without_pandas_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_pandas(name, *a, **kw):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"inversion-limits\[analysis\]"):
        RecordStore(tmp_path).to_frame()
