"""The configuration keys of a fixed set of canonical runs: a guard that a refactor keeps every hash.

A configuration's key (sha256 of its canonical JSON) is a record's identity: if a refactor changed
it, every stored result would silently stop being reused.  :func:`canonical_configs` builds one
configuration of every kind through the public constructors — every defense and attack with its
defaults filled in, the CEM objectives, the cell builders of the experiments and every cell of
the repository's sweep specs — and :func:`keys` maps a name to ``(key, canonical config)``.

``python benchmarks/config_keys.py > tests/empirics/config_keys_main.json`` wrote the file the
test ``tests/empirics/test_config_keys.py`` compares with: it was run on main's code before the
split of ``empirics.runs`` (34bd28b; regenerated on 0776911, whose new ``alpha`` fields changed the
synthetic-bounds and check-defense keys), so the expected keys were computed by the old code, not
written by hand.  The builder below imports through the new module layout; the calls are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports():
    """Names from wherever this commit keeps them (the layout before and after issue 20)."""
    try:
        from empirics.kinds.check_defense import CheckDefenseConfig
        from empirics.kinds.dataset_attack import DatasetAttackConfig
        from empirics.kinds.defense_table import defense_table_cells
        from empirics.kinds.entropy_mse import entropy_vs_mse_cells
        from empirics.kinds.optimality import OptimalityConfig
        from empirics.kinds.synthetic import synthetic_cells
        from empirics.kinds.train import TrainRunConfig
        from empirics.kinds.train_attack import TrainAttackConfig
        from empirics.specs import AttackSpec, DefenseSpec, TrainConfig
    except ImportError:  # the layout of main before issue 20
        from empirics.experiments.check_config import CheckDefenseConfig
        from empirics.experiments.defense_table import defense_table_cells
        from empirics.experiments.entropy_mse import entropy_vs_mse_cells
        from empirics.experiments.synthetic import synthetic_cells
        from empirics.runs import (AttackSpec, DatasetAttackConfig, DefenseSpec, OptimalityConfig,
                                   TrainAttackConfig, TrainConfig, TrainRunConfig)
    return dict(CheckDefenseConfig=CheckDefenseConfig, DatasetAttackConfig=DatasetAttackConfig,
                defense_table_cells=defense_table_cells, entropy_vs_mse_cells=entropy_vs_mse_cells,
                OptimalityConfig=OptimalityConfig, synthetic_cells=synthetic_cells,
                TrainAttackConfig=TrainAttackConfig, TrainRunConfig=TrainRunConfig, AttackSpec=AttackSpec,
                DefenseSpec=DefenseSpec, TrainConfig=TrainConfig)


#: every registered defense, each with its defaults (a spec that names only the defense)
DEFENSES = ("noise", "bottleneck", "dropout", "nopeek", "arl", "mixcon", "unicon", "tl_freeze", "cem")
CEM_VARIANTS = ("cem:lam=0.01", "cem:lam=16,objective=code", "cem:lam=16,objective=code,var_threshold=0.125",
                "cem:lam=0.5,objective=code,released_indexing=true", "cem:lam=0.01,covariance=diag,k_per_class=2",
                "cem:lam=1,method=dense,feature_source=cached")


def canonical_configs() -> dict:
    """name -> configuration object (one of every kind, every defense and attack, every sweep cell)."""
    n = _imports()
    TC, DS, AS = n["TrainConfig"], n["DefenseSpec"], n["AttackSpec"]
    out = {}
    for d in DEFENSES + CEM_VARIANTS:
        out[f"train/{d}"] = n["TrainRunConfig"](train=TC(dataset="digits", defenses=("noise:sigma=0.1", d),
                                                          epochs=2))
    out["train/none"] = n["TrainRunConfig"](train=TC(dataset="digits"))
    out["train/mnist1d-sgd"] = n["TrainRunConfig"](train=TC(dataset="mnist1d", optimizer="sgd", lr=0.05,
                                                            weight_decay=1e-4, bottleneck=8, seed=3, epochs=3))
    out["train/synthetic-alias"] = n["TrainRunConfig"](train=TC(dataset="synthetic", epochs=1))
    out["train-attack/all"] = n["TrainAttackConfig"](
        train=TC(dataset="digits", defenses=("noise:sigma=0.05",), epochs=2),
        attacks=("decoder", "gan", "optimization:steps=50"), eval_train=False)
    for i, c in enumerate(n["defense_table_cells"](baselines=("noise", "dropout", "nopeek", "arl", "mixcon",
                                                               "unicon", "bottleneck"),
                                                    seeds=(0,), lam=0.005, epochs=2, attack_epochs=1,
                                                    attacks=("decoder", "optimization"))):
        out[f"defense-table/{i}"] = c
    for i, c in enumerate(n["entropy_vs_mse_cells"](sigmas=(0.1, 0.3), lams=(0.0, 0.01), seeds=(0, 1), epochs=2,
                                                     attack_epochs=1)):
        out[f"entropy-vs-mse/{i}"] = c
    for i, c in enumerate(n["synthetic_cells"](sigmas=(0.1, 0.5), seeds=(0,), d=6, k_feat=3, mc=5000)):
        out[f"synthetic-bounds/{i}"] = c
    out["optimality/decoder"] = n["OptimalityConfig"](attack="decoder", setting="linear", sigma=0.2, n_aux=20000,
                                                      n_test=1000, epochs=8, seed=0)
    out["optimality/optimization"] = n["OptimalityConfig"](attack="optimization", setting="nonlinear", sigma=0.3,
                                                           epochs=None, opt_steps=100)
    out["dataset-attack/digits"] = n["DatasetAttackConfig"](
        train=TC(dataset="digits", epochs=15, batch_size=128, lr=3e-3),
        attacks=(AS.parse("decoder", epochs=10), AS.parse("optimization", tv=0.01, steps=300)), truncation=True,
        truncation_epochs=15)
    out["check-defense/file"] = n["CheckDefenseConfig"](
        encoder="enc.py:make", encoder_hash="0123456789abcdef", dataset="synthetic-mixture", noise=0.3,
        attacks=(AS.parse("decoder", epochs=3), AS.parse("optimization", steps=30)), n_mc=5000, epochs=3)
    out["check-defense/weights"] = n["CheckDefenseConfig"](
        encoder="pkg.mod:make", encoder_hash="fedcba9876543210", weights="w.pt", weights_hash="00ff00ff00ff00ff",
        dataset="digits", train_encoder=False, head=False, encoder_noise=0.05)
    out.update(_sweep_cells())
    assert all(isinstance(d, DS) for c in out.values() if hasattr(c, "train") for d in c.train.defenses)
    return out


def _sweep_cells() -> dict:
    from empirics.sweep.spec import expand, load_spec
    out = {}
    for p in sorted((ROOT / "sweeps").glob("*.toml")):
        for i, cell in enumerate(expand(load_spec(p))):
            out[f"sweep/{p.stem}/{i}"] = cell.config
    return out


def keys() -> dict:
    """name -> {"key": configuration key, "config": its canonical dict}."""
    return {name: {"key": c.key(), "config": c.to_dict()} for name, c in canonical_configs().items()}


def dumps(table: dict) -> str:
    """One line per configuration (sorted), so that a changed key is a one-line diff."""
    lines = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, sort_keys=True, ensure_ascii=False)}"
             for k, v in sorted(table.items())]
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    print(dumps(keys()), end="")
