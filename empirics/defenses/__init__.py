"""Defenses as plug-ins to the one training loop; see :mod:`empirics.defenses.base`."""

from .base import (Defense, EpochContext, Step, available_defenses, get_defense, make_defense,
                   register)

__all__ = ["Defense", "EpochContext", "Step", "available_defenses", "get_defense", "make_defense",
           "register"]
