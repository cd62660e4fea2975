"""The defense plug-in interface shared by every defense and the one training loop.

A defense never owns the training loop.  Like Opacus' ``make_private``, it is *attached* to the
user's split model and optimizer and then takes part in each step through a few hooks; the loop
(:func:`empirics.training.train`) calls them in this order::

    model, optimizer = defense.attach(model, optimizer, data=train_data)   # once
    for epoch:
        defense.on_epoch_start(ctx)                     # e.g. CEM: mixture estimate (Alg. 1, l. 5)
        for (x, y) in batches:
            z = model.encode(x)                          # client features, before obfuscation
            z_sent = defense.transform_features(z, training=True)   # noise, dropout ... (chained)
            logits = model.head(z_sent)
            loss = CE(logits, y) + sum(defense.extra_loss(step) for defense in defenses)
            loss.backward(); optimizer.step()
            defense.after_step(step)                     # e.g. ARL: update the proxy decoder

Several defenses compose: features pass through every ``transform_features`` in list order and
the extra losses add up.  Every defense has a *strength* (σ, λ, p ...) and the off-switch
property: at strength 0 training is bit-identical to training without the defense under the same
seed (tested for each defense), which means a defense at strength 0 must not even draw random
numbers from the shared generators.

Defenses are looked up by name with :func:`get_defense` / created with :func:`make_defense`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

__all__ = ["Step", "EpochContext", "Defense", "register", "get_defense", "make_defense",
           "available_defenses"]


@dataclass
class Step:
    """What one training step exposes to the defenses (tensors live on the training device)."""

    x: Any  # inputs, (N, ...)
    y: Any  # labels, (N,)
    z: Any  # encoder output before any defense transform, (N, ...)
    z_sent: Any  # features after every transform_features: what the server (and attacker) sees
    logits: Any
    model: Any  # the SplitModel
    epoch: int
    step: int
    generator: Any = None  # torch.Generator of the loop (defenses draw randomness only from here)


@dataclass
class EpochContext:
    """What ``on_epoch_start`` receives: enough to run the encoder over the training data."""

    model: Any
    data: Any  # the training Dataset/tensors the loop iterates over
    epoch: int
    device: Any
    generator: Any = None
    extra: dict = field(default_factory=dict)


class Defense:
    """Base class: every hook is a no-op, so a subclass overrides only what it needs."""

    name: ClassVar[str] = "none"

    @property
    def strength(self) -> float:
        """The defense's strength parameter; 0 switches it off exactly."""
        return 0.0

    def attach(self, model, optimizer, *, data=None):
        """Wrap/modify ``model`` and ``optimizer`` before training; return the pair to train."""
        return model, optimizer

    def transform_features(self, z, *, training: bool, generator=None):
        """Obfuscate the features the client sends (noise, dropout ...).  Identity by default.

        Called at training time *and* at deployment (``training=False``) so that attacks see
        features exactly as the deployed model emits them.
        """
        return z

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Per-epoch work before the first batch (e.g. CEM's mixture estimate)."""

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
    """Class decorator: make a defense available by its ``name``."""
    if not cls.name or cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"defense name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available_defenses() -> list[str]:
    return sorted(_REGISTRY)


def get_defense(name: str) -> type[Defense]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"defense: expected one of {available_defenses()}, got {name!r}") from None


def make_defense(name: str, **kwargs) -> Defense:
    """Create a registered defense by name, e.g. ``make_defense("noise", sigma=0.1)``."""
    return get_defense(name)(**kwargs)


DefenseFactory = Callable[..., Defense]
