"""Empirical half: data, split models, training, attacks, defenses, metrics and experiments.

Importing :mod:`empirics` is cheap; submodules that need torch (``empirics.models``,
``empirics.training``, ``empirics.attacks`` ...) are imported when used.

Map:

* runs as data — :mod:`.runs` (frozen configurations, their hash = identity, results, records),
  :mod:`.store` (one JSON file per record, quarantine), :mod:`.experiments` (``execute`` and the
  runners: train, attack cells, Fig. 3, Table 1, synthetic bounds, check-defense), :mod:`.sweep`
  (grids on local processes, Ray or SLURM);
* data and models — :mod:`.registry` (the one dataset registry), :mod:`.data`, :mod:`.models`,
  :mod:`.training` (built on :func:`empirics.defenses.defend`);
* defenses and attacks — :mod:`.defenses` (plug into your own loop with ``defend``),
  :mod:`.attacks`;
* measurement and statistics — :mod:`.measure` (H(x|z) estimates, dFIL), :mod:`.metrics`,
  :mod:`.checks` (one-sided tests with stated error rates, t-intervals);
* plumbing — :mod:`.seeding` (independent random streams), :mod:`.threads`, :mod:`.report`,
  :mod:`.errata`, :mod:`.cli`.
"""
