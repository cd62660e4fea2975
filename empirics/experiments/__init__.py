"""Experiments around the CEM paper's claims, as configurations → records → summaries.

Split by job (each module < 300 lines, no function over ~80):

* :mod:`.common` — data for a configuration, a trained model (failed cells flagged), an attacked model;
* :mod:`.runner` — ``execute(config, store)``: run once, record, reuse (the resume logic of every command);
* :mod:`.train_attack` — runners of ``train``, ``train-attack`` and ``defense-table`` cells;
* :mod:`.entropy_mse` — Fig. 3 analogue (H(x|z) by Thm 2 against the decoder MSE, slope vs 2/d);
* :mod:`.defense_table` — Table 1 analogue (each defense with and without CEM over seeds, tested verdicts);
* :mod:`.synthetic` — bounds beside the exact MMSE on a known mixture with a linear encoder;
* :mod:`.defense_check` — a user's encoder checked against every bound (its parts: :mod:`.affine`
  the exact affine map and the deployed departure, :mod:`.check_encoder`, :mod:`.check_deploy`,
  :mod:`.check_analysis`, :mod:`.check_bounds`, :mod:`.check_verdict`, :mod:`.check_config`).

Measurements live in :mod:`empirics.measure`, statistics in :mod:`empirics.checks`, the user-code
loader in :mod:`empirics.usercode`, configurations in :mod:`empirics.runs`, the store in
:mod:`empirics.store`.
"""

import importlib

#: public name -> module that defines it (imported on first use, so that importing a torch-free
#: submodule such as ``.defense_table`` does not import torch)
_LAZY = {
    "fit_log_linear": "..checks", "spearman": "..checks",
    "conditional_entropy": "..measure", "fisher_information": "..measure",
    "load_dataset": "..registry", "load_factory": "..usercode",
    "check_defense": ".defense_check", "check_defense_record": ".defense_check", "run_check": ".defense_check",
    "exact_affine_map": ".affine", "deployed_departure": ".affine",
    "CheckDefenseConfig": ".check_config", "CheckDefenseResult": ".check_config",
    "RunContext": ".common", "attack_model": ".common", "build_model": ".common", "train_model": ".common",
    "BASELINES": ".defense_table", "defense_table_cells": ".defense_table",
    "summarise_defense_table": ".defense_table",
    "entropy_vs_mse": ".entropy_mse", "entropy_vs_mse_cells": ".entropy_mse",
    "plot_entropy_vs_mse": ".entropy_mse", "summarise_entropy_vs_mse": ".entropy_mse",
    "RUNNERS": ".runner", "Outcome": ".runner", "execute": ".runner", "execute_all": ".runner", "runner": ".runner",
    "plot_synthetic_bounds": ".synthetic", "synthetic_bounds": ".synthetic", "synthetic_cells": ".synthetic",
    "synthetic_rows": ".synthetic",
}

#: modules whose import registers a runner (``execute`` imports them all)
RUNNER_MODULES = (".train_attack", ".dataset_attack", ".entropy_mse", ".synthetic", ".defense_check")

__all__ = sorted(_LAZY)


def register_runners() -> None:
    """Import every module that registers a runner."""
    for m in RUNNER_MODULES:
        importlib.import_module(m, __name__)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
