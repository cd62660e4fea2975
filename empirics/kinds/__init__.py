"""The kinds of run, one module each: configuration, result, runner and tables.

Every module here that defines ``KIND`` (an :class:`empirics.records.Kind`) is a kind;
:func:`empirics.records.kinds` lists this package to find them, so the record store, the runner
(:func:`empirics.experiments.execute`), sweeps (:mod:`empirics.sweep`) and the command line all
know a kind as soon as its module is here — adding a kind touches that one file (and its test).
The modules import no torch at module level (configurations, results and tables are read without
it); each runner imports what it trains with.

==================  =========================================================================
kind                what one configuration is
==================  =========================================================================
train               ``invlimits train``: one trained split model (checkpointed)
train-attack        a trained model attacked by each attack (``experiment = "train"`` sweeps)
defense-table       one Table 1 cell: a base defense with or without CEM
entropy-vs-mse      one Fig. 3 cell: noise σ, CEM λ → H(x|z) estimate and decoder MSE
synthetic-bounds    a known mixture through a trained linear encoder: bounds vs the exact MMSE
optimality          one (attack, setting) cell of the attack-optimality benchmark
dataset-attack      ``invlimits attack --dataset``: a trained model, attacks, truncation
check-defense       ``invlimits check-defense``: a user's encoder held to every bound
==================  =========================================================================
"""

__all__: list[str] = []  # each kind is its own module; empirics.records.kinds() lists them
