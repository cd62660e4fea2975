"""The defense plug-in interface shared by every defense, your training loop and ours.

A defense never owns the training loop.  Like Opacus' ``make_private``, it is attached to the
user's encoder and optimizer by :func:`empirics.defenses.defend`, which returns a defended
encoder (an ``nn.Module``) whose methods call the hooks below; the package's own
:func:`empirics.training.train` is one user of that same entry point.  In loop order::

    defended = defend(encoder=..., defenses=[...], optimizer=..., data=...)
                                      # attach(defended, optimizer, data=data), once, in list order
    for epoch:
        for (x, y) in batches:
            z_sent = defended(x)      # first step of an epoch: on_epoch_start(ctx) (e.g. CEM's
                                      #   mixture estimate, Alg. 1 l. 4-5); then z = encoder(x) and
                                      #   z_sent = chain of transform_features(z, training=True)
            loss = task_loss(head(z_sent), y) + defended.loss(y)   # Σ extra_loss(step)
            loss.backward(); optimizer.step()
            defended.step()           # after_step(step) (e.g. ARL: update the proxy decoder)
        defended.epoch_end()          # on_epoch_end(ctx) (e.g. CEM: refit on the epoch's features)

Several defenses compose: features pass through every ``transform_features`` in list order and
the extra losses add up.  Every defense has a *strength* (σ, λ, p ...) and the off-switch
property: at strength 0 training is bit-identical to training without the defense under the same
seed (tested for each defense, through :func:`~empirics.defenses.defend` in a plain loop and
through :func:`~empirics.training.train`), which means a defense at strength 0 must not even draw
random numbers from the shared generators.

Defenses are looked up by name with :func:`get_defense` / created with :func:`make_defense`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..parameters import constructor_params

__all__ = ["Step", "EpochContext", "Defense", "register", "get_defense", "make_defense", "defense_params",
           "available_defenses"]


@dataclass
class Step:
    """What one training step exposes to the defenses (tensors live on the training device)."""

    x: Any  # inputs, (N, ...)
    y: Any  # labels, (N,)
    z: Any  # encoder output before any defense transform, (N, ...)
    z_sent: Any  # features after every transform_features: what the server (and attacker) sees
    logits: Any  # None through defend(): the head (and its logits) are the user's
    model: Any  # the DefendedEncoder (encoder, head, defenses, optimizer, encode)
    epoch: int
    step: int
    generator: Any = None  # torch.Generator of the loop (defenses draw randomness only from here)


@dataclass
class EpochContext:
    """What ``on_epoch_start`` / ``on_epoch_end`` receive: enough to run the encoder over the
    training data.  ``data`` is ``None`` when the loop did not say what it trains on (then a
    defense that needs the training set works from the features of the epoch's steps)."""

    model: Any  # the DefendedEncoder
    data: Any  # the training Dataset/DataLoader/(x, y) tensors the loop iterates over, or None
    epoch: int
    device: Any
    generator: Any = None
    extra: dict = field(default_factory=dict)


class Defense:
    """Base class: every hook is a no-op, so a subclass overrides only what it needs."""

    name: ClassVar[str] = "none"
    #: whether :meth:`extra_loss` uses the labels (``defended.loss(y)`` then requires ``y``)
    needs_labels: ClassVar[bool] = False

    @property
    def strength(self) -> float:
        """The defense's strength parameter; 0 switches it off exactly."""
        return 0.0

    def attach(self, model, optimizer, *, data=None):
        """Prepare for training, once, before the first step; return ``(model, optimizer)``.

        ``model`` is the :class:`~empirics.defenses.defended.DefendedEncoder` (``encoder``,
        ``head`` — possibly ``None`` —, ``defenses``, ``encode``); ``optimizer`` the user's (or
        ``None``).  A defense may freeze parameters (``tl_freeze``), remember the optimizer to
        read its learning rate (CEM ``objective="code"``) or the composed defenses (CEM's Σp), or
        return another optimizer, which the defended encoder then holds.
        """
        return model, optimizer

    def transform_features(self, z, *, training: bool, generator=None):
        """Obfuscate the features the client sends (noise, dropout ...).  Identity by default.

        Called at training time *and* at deployment (``training=False``) so that attacks see
        features exactly as the deployed model emits them.
        """
        return z

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Per-epoch work before the first batch's encoder pass (e.g. CEM's mixture estimate)."""

    def on_epoch_end(self, ctx: EpochContext) -> None:
        """Per-epoch work after the last step (e.g. CEM's refit on the features of the epoch)."""

    def extra_loss(self, step: Step):
        """A term added to the task loss, or ``None``."""
        return None

    def after_step(self, step: Step) -> None:
        """Work after the optimizer step (e.g. an adversarial proxy update)."""

    def state_dict(self) -> dict:
        """Tensors/values needed to resume training (saved inside the checkpoint)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def config(self) -> dict:
        """Plain-data description for results files."""
        return {"name": self.name, "strength": self.strength}

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({cfg})"


_REGISTRY: dict[str, type[Defense]] = {}


def register(cls: type[Defense]) -> type[Defense]:
    """Class decorator: make a defense available by its ``name``.

    Parameters
    ----------
    cls : type
        A :class:`Defense` subclass with a ``name``.

    Returns
    -------
    type
        ``cls``.
    """
    if not cls.name or cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"defense name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available_defenses() -> list[str]:
    """The registered defense names, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_REGISTRY)


def get_defense(name: str) -> type[Defense]:
    """The registered defense class called ``name``.

    Parameters
    ----------
    name : str
        A registered name.

    Returns
    -------
    type
        Its class (``ValueError`` listing the names otherwise).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"defense: expected one of {available_defenses()}, got {name!r}") from None


def make_defense(name: str, **kwargs) -> Defense:
    """Create a registered defense by name, e.g. ``make_defense("noise", sigma=0.1)``.

    Parameters
    ----------
    name : str
        A registered name.
    **kwargs
        Its constructor's parameters.

    Returns
    -------
    Defense
    """
    return get_defense(name)(**kwargs)


def defense_params(defense: Defense) -> dict:
    """The constructor parameters of a defense object, read back from its attributes (those its
    registered entry takes; see :func:`empirics.parameters.constructor_params`).

    Parameters
    ----------
    defense : Defense
        A defense object.

    Returns
    -------
    dict
    """
    names = [p.name for p in constructor_params(get_defense(defense.name))]
    return {n: getattr(defense, n) for n in names if hasattr(defense, n)}


DefenseFactory = Callable[..., Defense]
