"""Defenses that plug into your own training loop; see :func:`defend` and :mod:`.base`.

``defend(encoder=..., defenses=["noise:sigma=0.025", "cem:lam=16"], optimizer=..., data=...)``
returns a defended encoder (an ``nn.Module`` giving the features as sent) with ``loss(y)`` (the
term to add to your loss), ``step()`` (after the optimizer step) and ``epoch_end()``
(:mod:`empirics.defenses.defended`); :func:`empirics.training.train` is built on it.

Registered by name (``make_defense(name, **kw)`` or a ``"name:k=v"`` spec):

============  ====================================================  ==========================
name          what it does                                           strength (0 = off)
============  ====================================================  ==========================
noise         z + N(0, σ²I) at training and deployment               ``sigma``
bottleneck    zero the last ⌈drop·C⌉ feature channels                ``drop``
dropout       feature dropout at training and deployment             ``p``
nopeek        + α·dCor(x, z) (distance correlation)                  ``alpha``
arl           − α·proxy-decoder MSE, proxy trained adversarially      ``alpha``
mixcon        MixCon separability loss (λ, β)                        ``lam``
unicon        UniCon within-class distance loss (MixCon app. §D.1)   ``lam``
tl_freeze     pre-train on public data, freeze first layers          ``freeze``
cem           conditional entropy maximization (CEM Alg. 1, or the   ``lam``
              released code's recipe with ``objective=code``)
============  ====================================================  ==========================

Adding a defense: a module here with a :class:`~.base.Defense` subclass (its ``name`` and
constructor parameters are its spec), and its class in :data:`BUILTIN` below.
"""

from .base import (Defense, EpochContext, Step, available_defenses, defense_params, get_defense, make_defense,
                   register)
from .noise import GaussianNoise
from .bottleneck import Bottleneck
from .dropout import FeatureDropout
from .nopeek import NoPeek, distance_correlation
from .arl import ARL
from .mixcon import MixCon, UniCon, mixcon_loss, unicon_loss
from .tl_freeze import TLFreeze
from .cem import CEM, GaussianMixtureFit, PaperCEM, ReleasedCEM, cem_objective, fit_class_mixture
from .defended import DefendedEncoder, defend, resolve_defenses

#: the package's defenses, registered by name here (and only here); your own: ``register(cls)``
BUILTIN = (GaussianNoise, Bottleneck, FeatureDropout, NoPeek, ARL, MixCon, UniCon, TLFreeze, CEM)
for _cls in BUILTIN:
    register(_cls)
del _cls

__all__ = ["defend", "DefendedEncoder", "resolve_defenses", "Defense", "EpochContext", "Step", "available_defenses", "get_defense", "make_defense",
           "register", "GaussianNoise", "Bottleneck", "FeatureDropout", "NoPeek", "ARL", "MixCon",
           "UniCon", "TLFreeze", "CEM", "PaperCEM", "ReleasedCEM", "BUILTIN", "defense_params", "GaussianMixtureFit", "cem_objective", "fit_class_mixture",
           "distance_correlation", "mixcon_loss", "unicon_loss"]
