"""Running experiments: the library entry points, the runner and the machinery of check-defense.

What each kind of run *is* (configuration, result, runner, tables) lives in :mod:`empirics.kinds`,
one module per kind.  This package holds what runs them:

* :mod:`.common` — data for a configuration, a trained model (failed cells flagged), an attacked model;
* :mod:`.runner` — ``execute(config, store)``: run once, record, reuse (the resume logic of every command);
* :mod:`.defense_check` — :func:`check_defense`, a user's encoder checked against every bound (its
  parts: :mod:`.affine` the exact affine map and the deployed departure, :mod:`.check_encoder`,
  :mod:`.check_deploy`, :mod:`.check_analysis`, :mod:`.check_bounds`, :mod:`.check_verdict`).

The names below are the library's entry points, importable from here; each is defined once, in the
module named beside it.  Measurements live in :mod:`empirics.measure`, statistics in
:mod:`empirics.checks`, the user-code loader in :mod:`empirics.usercode`, the record schema in
:mod:`empirics.records`, the store in :mod:`empirics.store`.
"""

import importlib

#: public name -> module that defines it.  Deferred (PEP 562): the kinds import this package's
#: torch-free modules, and importing it must not import torch (check-defense's modules do).
_LAZY = {
    "fit_log_linear": "..checks", "spearman": "..checks",
    "conditional_entropy": "..measure", "fisher_information": "..measure",
    "load_dataset": "..registry", "load_factory": "..usercode",
    "check_defense": ".defense_check", "check_defense_record": ".defense_check", "run_check": ".defense_check",
    "exact_affine_map": ".affine", "deployed_departure": ".affine",
    "CheckDefenseConfig": "..kinds.check_defense", "CheckDefenseResult": "..kinds.check_defense",
    "RunContext": ".common", "attack_model": ".common", "build_model": ".common", "train_model": ".common",
    "BASELINES": "..kinds.defense_table", "defense_table_cells": "..kinds.defense_table",
    "summarise_defense_table": "..kinds.defense_table",
    "entropy_vs_mse": "..kinds.entropy_mse", "entropy_vs_mse_cells": "..kinds.entropy_mse",
    "plot_entropy_vs_mse": "..kinds.entropy_mse", "summarise_entropy_vs_mse": "..kinds.entropy_mse",
    "Outcome": "..records", "execute": ".runner", "execute_all": ".runner",
    "plot_synthetic_bounds": "..kinds.synthetic", "synthetic_bounds": "..kinds.synthetic",
    "synthetic_cells": "..kinds.synthetic", "synthetic_rows": "..kinds.synthetic",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
