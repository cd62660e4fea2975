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
