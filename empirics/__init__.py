"""Empirical half: data, split models, training, attacks, defenses, metrics and experiments.

Importing :mod:`empirics` is cheap; submodules that need torch (``empirics.models``,
``empirics.training``, ``empirics.attacks`` ...) are imported when used.
"""
