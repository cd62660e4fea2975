"""Empirical half: data, split models, training, attacks, defenses, metrics and experiments.

Importing :mod:`empirics` is cheap; submodules that need torch (``empirics.models``,
``empirics.training``, ``empirics.attacks`` ...) are imported when used.

Map:

* runs as data — :mod:`.records` (the record schema: frozen configurations, their hash =
  identity, results, records; the registry of kinds), :mod:`.specs` (defenses, attacks and a
  trained model as configuration parts), :mod:`.kinds` (one module per kind of run: its
  configuration, result, runner and tables — train, attack cells, Fig. 3, Table 1, synthetic
  bounds, optimality, check-defense), :mod:`.store` (one JSON file per record, quarantine),
  :mod:`.experiments` (``execute`` and the library entry points), :mod:`.sweep` (grids on local
  processes, Ray or SLURM);
* data and models — :mod:`.registry` (the one dataset registry), :mod:`.data`, :mod:`.models`,
  :mod:`.training` (built on :func:`empirics.defenses.defend`);
* defenses and attacks — :mod:`.defenses` (plug into your own loop with ``defend``),
  :mod:`.attacks`;
* measurement and statistics — :mod:`.measure` (H(x|z) estimates, dFIL), :mod:`.metrics`,
  :mod:`.checks` (one-sided tests with stated error rates, t-intervals);
* plumbing — :mod:`.seeding` (independent random streams), :mod:`.threads`, :mod:`.parameters`
  (``name:k=v`` specs), :mod:`.results` (checks and sections as data), :mod:`.report` (their
  terminal, JSON and Markdown forms), :mod:`.errata`, :mod:`.cli`.

Infrastructure shared with :mod:`theory` and :mod:`reduction` lives in ``theory``'s private base
modules: :mod:`theory._io` (the one JSON serializer and atomic writer) and :mod:`theory._validate`
(the one family of validators).
"""

__all__: list[str] = []  # importing empirics is cheap: use its subpackages (torch loads with them)
