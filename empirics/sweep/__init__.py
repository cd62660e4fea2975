"""Sweeps: grids of run configurations dispatched to an executor — local processes, Ray or SLURM.

``invlimits sweep SPEC.toml --out DIR`` (:mod:`empirics.sections.sweep_section`) is a thin adapter
over this package:

* :mod:`.spec` — the TOML spec: validation (one line naming the key on any error) and expansion
  into cells, one frozen configuration of a kind (:mod:`empirics.kinds`) each (its key = its
  identity and resume key); the experiments and their parameters are the kinds' sweep dataclasses
  (:mod:`.params`);
* :mod:`.worker` — :func:`~.worker.run_cell`, what every executor runs for a cell: it calls
  :func:`empirics.experiments.runner.execute` (the function every command uses) and writes the
  cell's record atomically to ``DIR/records/<key>.json``;
* :mod:`.executors` — ``local`` (process pool), ``ray`` (an existing cluster or a local one),
  ``slurm`` (submitit job arrays; ``slurm-local`` = submitit's local executor, same code path);
* :mod:`.collect` — whatever records exist → the kind's tables and figures (Fig. 3, Table 1);
* :mod:`.estimate` — ``--dry-run``'s device-hours from timed training steps.

Importing this package (and :mod:`.spec`) does not import torch, Ray or submitit.

Examples
--------
>>> s = parse_spec({"sweep": {"experiment": "entropy-vs-mse"},
...                 "grid": {"sigma": [0.1, 0.3], "lam": [0.0, 0.01], "seed": [0, 1]},
...                 "settings": {"epochs": 2}})
>>> s.n_combinations
8
>>> parse_spec({"sweep": {"experiment": "entropy-vs-mse"}, "grid": {"sigma": []}})
Traceback (most recent call last):
...
ValueError: spec: grid.sigma: expected a non-empty list of values (an axis), got []
"""

from .spec import Cell, SweepSpec, expand, experiments, load_spec, params, parse_spec

__all__ = ["experiments", "params", "Cell", "SweepSpec", "expand", "load_spec", "parse_spec"]
