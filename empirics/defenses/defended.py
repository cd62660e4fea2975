"""Defenses in your own training loop: :func:`defend` (Opacus' ``make_private``, for inversion).

:func:`defend` takes your client encoder, the defenses (by name — ``"cem:lam=16"`` — or as
objects, from the one registry) and your optimizer, and returns a :class:`DefendedEncoder`: an
``nn.Module`` whose forward is the encoder followed by every defense's feature transform — the
features *as sent to the server* — plus three methods your loop calls::

    defended = defend(encoder=encoder, defenses=["noise:sigma=0.025", "cem:lam=16"],
                      optimizer=optimizer, data=train_loader)
    for epoch in range(epochs):
        defended.train(); head.train()
        for x, y in train_loader:
            z = defended(x)                                   # noise etc. applied
            loss = F.cross_entropy(head(z), y) + defended.loss(y)   # + CEM's λ·L_C
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            defended.step()                                   # after the optimizer step
        defended.epoch_end()                                  # CEM's per-epoch refresh

What each call does (the hooks of :class:`~.base.Defense`):

* ``defend(...)`` — ``attach(defended, optimizer, data=data)`` for each defense, in list order
  (``tl_freeze`` pre-trains and freezes here; CEM notes the optimizer and the composed noise).
* ``defended(x)`` in training mode with gradients on — a *training step*: at the first step of an
  epoch ``on_epoch_start`` (CEM: mixture estimate, Alg. 1 lines 4–5); then ``z = encoder(x)`` and
  ``transform_features(z, training=True)`` chained in list order, randomness from the training
  generator.
* ``defended(x)`` in eval mode — the deployed features (``transform_features(z,
  training=False)``: noise and dropout stay on, as deployed).  Not a step, and like a
  training-mode call under ``torch.no_grad()`` (training transforms, not a step) it draws from a
  separate generator: only training steps use the training generator, so evaluating between
  steps never changes training.
* ``defended.loss(y)`` — Σ ``extra_loss(step)`` for the latest training step (CEM, NoPeek,
  MixCon/UniCon, ARL's −α·proxy MSE): add it to your loss, once per step.
* ``defended.step()`` — ``after_step(step)``, after ``optimizer.step()`` (ARL trains its proxy
  decoder here).
* ``defended.epoch_end()`` — ``on_epoch_end(ctx)`` (CEM refits on the epoch's features when they
  are cached; otherwise its encoder pass runs at the next epoch's first step).

Parameters owned by defenses are **optimised internally, never by your optimizer**: ARL's proxy
decoder is created at the first step (on the features' device, from its own seed) and takes one
step of its own Adam (``lr`` of the spec) inside :meth:`DefendedEncoder.step`; it is not among
``defended.parameters()`` and its state is in :meth:`DefendedEncoder.defense_state`.  ``tl_freeze``
sets ``requires_grad=False`` on the frozen encoder layers (your optimizer then skips them).

Rules (each broken one is a ``ValueError`` that says what to do, never a silent no-op): one
``loss(y)`` per training step when a defense adds a term (CEM and UniCon need the labels ``y``);
one ``step()`` per training step when a defense updates after the optimizer step (ARL);
``epoch_end()`` only after at least one training step of the epoch.  CEM (``objective="paper"``)
needs a first mixture estimate before its first loss: pass ``data=`` (your training set) so that
the first step can encode it (Alg. 1 line 4), or call ``cem.estimate(z, y)`` yourself; without
``data`` every later estimate uses the features of the previous epoch's steps.

Device and compile.  Everything follows the encoder's parameters (no ``.cuda()``): move the encoder
(or pass ``device=``) and the defenses run there.  ``torch.compile`` works either way: compile the
encoder you pass in (``defend(encoder=torch.compile(enc), ...)``: the defenses' bookkeeping stays
eager) or the defended encoder itself (its bookkeeping is excluded from the graph).

Reproducibility.  With ``generator=None`` the training-time randomness (noise, dropout masks)
comes from ``torch_generator(seed, "features")`` and the deployed (eval-mode) randomness from
``torch_generator(seed, "eval")``, both created on the features' device at first use; the global
RNG is never touched.  A defense at strength 0 draws nothing, so with every defense at strength 0
your loop gives bit-identical weights with and without :func:`defend` (tested for every
registered defense).
"""

from __future__ import annotations

import torch
from torch import nn

from ..device import resolve_device
from ..models import SplitModel
from ..parameters import fill_seed, normalise_params, split_spec
from ..seeding import torch_generator
from ._util import data_len, data_tensors, iter_batches
from .base import Defense, EpochContext, Step, get_defense, make_defense

__all__ = ["defend", "DefendedEncoder", "resolve_defenses"]


def resolve_defenses(defenses, *, seed: int = 0) -> list[Defense]:
    """Defense instances from specs: ``"cem:lam=0.01"``, ``("cem", {"lam": 0.01})``, a
    :class:`~empirics.specs.DefenseSpec` or a :class:`~.base.Defense` (used as is).

    Names and parameters are checked against the registry (:func:`empirics.parameters.normalise_params`): an
    unknown name or parameter is a ``ValueError`` naming it and listing the valid ones.  A spec
    without a ``seed`` gets one from ``seed``'s "defense" stream (its index in the list).

    Parameters
    ----------
    defenses : sequence, or one spec or Defense
        The specs.
    seed : int
        The run's master seed.

    Returns
    -------
    list of Defense

    Examples
    --------
    >>> [type(d).__name__ for d in resolve_defenses(["noise:sigma=0.1", ("dropout", {"p": 0.2})])]
    ['GaussianNoise', 'FeatureDropout']
    """
    if defenses is None:
        return []
    if isinstance(defenses, (str, Defense)) or _is_spec(defenses):
        defenses = [defenses]
    try:
        items = list(defenses)
    except TypeError:
        raise ValueError(f"defenses: expected a list of defense specs ('name:k=v', (name, params), "
                         f"DefenseSpec) or Defense objects, got {type(defenses).__name__}") from None
    out: list[Defense] = []
    for i, spec in enumerate(items):
        if isinstance(spec, Defense):
            d = spec
        elif _is_spec(spec):
            d = spec.build(int(seed), i)
        elif isinstance(spec, str) or (isinstance(spec, (tuple, list)) and len(spec) == 2):
            if not isinstance(spec, str) and not isinstance(spec[1], dict):
                raise ValueError(f"defense: expected 'NAME:k=v', (name, params) or a Defense, got {spec!r}")
            name, kw = split_spec(spec, "defense") if isinstance(spec, str) else (spec[0], dict(spec[1]))
            params = dict(normalise_params(get_defense(name), name, kw, "defense"))
            d = make_defense(name, **fill_seed(params, int(seed), i))
        else:
            raise ValueError(f"defenses[{i}]: expected 'name:k=v', (name, params), a DefenseSpec or a Defense, "
                             f"got {type(spec).__name__}")
        if any(d is o for o in out):
            raise ValueError(f"defenses[{i}]: the same {d.name!r} defense object is listed twice")
        out.append(d)
    return out


def _is_spec(obj) -> bool:
    """A :class:`~empirics.specs.DefenseSpec` (read by its shape: that module sits above this one)."""
    return hasattr(obj, "build") and hasattr(obj, "params") and isinstance(getattr(obj, "name", None), str)


def _overrides(d: Defense, hook: str) -> bool:
    return getattr(type(d), hook) is not getattr(Defense, hook)


class _Pending:
    """The latest training step: its tensors and which of loss()/step() it has seen."""

    __slots__ = ("x", "z", "z_sent", "index", "step", "loss_done", "stepped")

    def __init__(self, x, z, z_sent, index):
        self.x, self.z, self.z_sent, self.index = x, z, z_sent, index
        self.step: Step | None = None
        self.loss_done = False
        self.stepped = False


class DefendedEncoder(nn.Module):
    """Your encoder with defenses attached; build it with :func:`defend`.

    ``forward(x)`` gives the features as sent (see the module docstring for training vs eval
    mode).  Attributes: ``encoder`` (your module, the only registered child: ``parameters()`` and
    ``state_dict()`` are the encoder's), ``head`` (or ``None``), ``defenses`` (instances, in
    order), ``optimizer``, ``data``, ``epoch`` (epochs ended so far), ``steps`` (training steps
    begun so far).
    """

    def __init__(self, encoder: nn.Module, defenses: list[Defense], *, optimizer=None, head=None, data=None,
                 generator=None, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        # not registered as submodules: parameters()/state_dict() are the encoder's alone
        self.__dict__["head"] = head
        self.defenses = list(defenses)
        self.optimizer = optimizer
        self.data = data
        self.seed = int(seed)
        self.epoch = 0
        self.steps = 0
        self._generator = generator
        self._eval_generator = None
        self._epoch_started = False
        self._steps_in_epoch = 0
        self._pending: _Pending | None = None

    # -- the SplitModel-like view the defense hooks use ---------------------------------------
    def encode(self, x):
        """Raw encoder output ``z = f(x)``, before any defense."""
        return self.encoder(x)

    def defend(self, z, *, training: bool = False, generator=None):
        """``z`` through every defense's ``transform_features`` in list order."""
        for d in self.defenses:
            z = d.transform_features(z, training=training, generator=generator)
        return z

    def client_features(self, x, *, training: bool = False, generator=None):
        """What the client sends for ``x`` (as :meth:`empirics.models.SplitModel.client_features`);
        no training step is recorded."""
        return self.defend(self.encode(x), training=training, generator=generator)

    @property
    def device(self) -> torch.device:
        """Device of the encoder's parameters (buffers; CPU for a parameter-free encoder)."""
        for t in self.encoder.parameters():
            return t.device
        for t in self.encoder.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def generator(self):
        """The training-time generator (``None`` until the first training step when not given)."""
        return self._generator

    def _gen(self, training: bool, device):
        if training:
            if self._generator is None:
                self._generator = torch_generator(self.seed, "features", device=device)
            return self._generator
        if self._eval_generator is None:
            self._eval_generator = torch_generator(self.seed, "eval", device=device)
        return self._eval_generator

    # -- the step -------------------------------------------------------------------------------
    def forward(self, x):
        record = self.training and torch.is_grad_enabled()
        if record:
            self._begin_step()
        z = self.encoder(x)
        # only training steps draw from the training generator (evaluation never shifts its stream)
        z_sent = self.defend(z, training=self.training, generator=self._gen(record, z.device))
        if record:
            self._record(x, z, z_sent)
        return z_sent

    @torch.compiler.disable
    def _begin_step(self):
        self._check_complete("defended(x) (the next training step)")
        if not self._epoch_started:
            ctx = EpochContext(model=self, data=self.data, epoch=self.epoch, device=self.device,
                               generator=self._generator)
            for d in self.defenses:
                d.on_epoch_start(ctx)
            self._epoch_started = True

    @torch.compiler.disable
    def _record(self, x, z, z_sent):
        self._pending = _Pending(x, z, z_sent, self.steps)
        self.steps += 1
        self._steps_in_epoch += 1

    def _check_complete(self, where: str):
        p = self._pending
        if p is None:
            return
        if not p.loss_done:
            names = [d.name for d in self.defenses if _overrides(d, "extra_loss")]
            if names:
                raise ValueError(f"{where}: loss() was not called for the previous training step, but "
                                 f"{names} add a term to your loss: loss = task_loss + defended.loss(y) at every "
                                 "step (a forward pass that is not a training step: run it under torch.no_grad() "
                                 "or in eval mode)")
        if not p.stepped:
            names = [d.name for d in self.defenses if _overrides(d, "after_step")]
            if names:
                raise ValueError(f"{where}: step() was not called after the previous training step, but "
                                 f"{names} update after the optimizer step: call defended.step() after "
                                 "optimizer.step()")

    def _step_of(self, p: _Pending, y):
        return Step(x=p.x, y=y, z=p.z, z_sent=p.z_sent, logits=None, model=self, epoch=self.epoch, step=p.index,
                    generator=self._generator)

    def loss(self, y=None):
        """The defenses' term to add to your task loss for the latest training step.

        Parameters
        ----------
        y : tensor (N,) of int, optional
            The labels of the batch of the latest ``defended(x)``; required when a defense uses
            labels (CEM, UniCon).

        Returns
        -------
        torch.Tensor
            Scalar: the sum of every defense's extra loss (a zero tensor when none adds one; adding
            it leaves your loss and its gradient bit-identical).
        """
        p = self._pending
        if p is None or p.stepped:
            raise ValueError("loss(): no training step to add to: call defended(x) in training mode with gradients "
                             "enabled first (loss() belongs to the latest such call)")
        if p.loss_done:
            raise ValueError("loss(): already called for this training step (the defenses update running "
                             "estimates once per step): keep the returned term instead of calling it again")
        need = [d.name for d in self.defenses if d.needs_labels]
        if y is None:
            if need:
                raise ValueError(f"loss(): {need} need the labels of the batch: call defended.loss(y) with the "
                                 "labels of the inputs of the latest defended(x)")
        else:
            y = torch.as_tensor(y)
            n = p.x.shape[0] if isinstance(p.x, torch.Tensor) else None
            if y.ndim != 1 or (n is not None and y.shape[0] != n):
                raise ValueError(f"y: expected {n if n is not None else 'N'} labels (one per input of the latest "
                                 f"defended(x)), got shape {tuple(y.shape)}")
            if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                raise ValueError(f"y: expected integer class labels, got dtype {y.dtype}")
            y = y.to(p.z.device)
        step = self._step_of(p, y)
        total = None
        for d in self.defenses:
            e = d.extra_loss(step)
            if e is not None:
                total = e if total is None else total + e
        p.step = step
        p.loss_done = True
        if total is None:
            return p.z_sent.new_zeros(()) if isinstance(p.z_sent, torch.Tensor) else torch.zeros(())
        return total

    def step(self) -> None:
        """Call after ``optimizer.step()``: every defense's ``after_step`` for the latest training step."""
        p = self._pending
        if p is None or p.stepped:
            raise ValueError("step(): no training step since the last step(): call it once per step, after "
                             "defended(x), defended.loss(y) and optimizer.step()")
        if not p.loss_done:
            names = [d.name for d in self.defenses if _overrides(d, "extra_loss")]
            if names:
                raise ValueError(f"step(): loss() was not called for this training step, but {names} add a term "
                                 "to your loss: loss = task_loss + defended.loss(y) before backward()")
        step = p.step if p.step is not None else self._step_of(p, None)
        for d in self.defenses:
            d.after_step(step)
        p.stepped = True

    def epoch_end(self) -> None:
        """Call after the last step of every epoch: every defense's ``on_epoch_end`` (CEM refits its
        estimate on the features of the epoch when they are cached)."""
        if self._steps_in_epoch == 0:
            raise ValueError(f"epoch_end(): no training step in epoch {self.epoch} (since "
                             f"{'defend()' if self.epoch == 0 else 'the last epoch_end()'}): call it once after "
                             "each epoch's steps, not before the first")
        self._check_complete("epoch_end()")
        ctx = EpochContext(model=self, data=self.data, epoch=self.epoch, device=self.device, generator=self._generator)
        for d in self.defenses:
            d.on_epoch_end(ctx)
        self.epoch += 1
        self._epoch_started = False
        self._steps_in_epoch = 0
        self._pending = None

    # -- checkpoints and deployment ----------------------------------------------------------
    def defense_state(self) -> dict:
        """Counters, generator states and every defense's ``state_dict()`` (for your checkpoint,
        beside the encoder's and optimizer's ``state_dict()``; best taken after ``epoch_end()``)."""
        gens = {}
        if self._generator is not None:
            gens["features"] = self._generator.get_state().cpu()
        if self._eval_generator is not None:
            gens["eval"] = self._eval_generator.get_state().cpu()
        return {"epoch": self.epoch, "steps": self.steps, "steps_in_epoch": self._steps_in_epoch,
                "generators": gens, "defenses": [d.state_dict() for d in self.defenses]}

    def load_defense_state(self, state: dict) -> None:
        """Restore :meth:`defense_state` (the defenses must be the same, in the same order)."""
        if not isinstance(state, dict) or "defenses" not in state:
            raise ValueError("state: expected the dict returned by defense_state()")
        if len(state["defenses"]) != len(self.defenses):
            raise ValueError(f"state: holds {len(state['defenses'])} defense states, this defended encoder has "
                             f"{len(self.defenses)} defenses")
        self.epoch = int(state.get("epoch", 0))
        self.steps = int(state.get("steps", 0))
        self._steps_in_epoch = int(state.get("steps_in_epoch", 0))
        self._epoch_started = self._steps_in_epoch > 0
        self._pending = None
        gens = state.get("generators", {})
        dev = self.device
        if "features" in gens:
            self._gen(True, dev).set_state(gens["features"].to(self._generator.get_state().device))
        if "eval" in gens:
            self._gen(False, dev).set_state(gens["eval"].to(self._eval_generator.get_state().device))
        for d, s in zip(self.defenses, state["defenses"]):
            d.load_state_dict(s)

    def split_model(self, head: nn.Module | None = None, *, input_shape=None, unit_range: bool = False):
        """An :class:`empirics.models.SplitModel` sharing this encoder, ``head`` (default: the one
        given to :func:`defend`) and these defenses — for the package's attacks, ``evaluate`` and
        ``measure`` (its ``client_features`` are this module's eval-mode features)."""
        head = head if head is not None else self.head
        if head is None:
            raise ValueError("head: expected the server head (nn.Module); none was given to defend()")
        return SplitModel(self.encoder, head, defenses=self.defenses, input_shape=input_shape, unit_range=unit_range)

    def extra_repr(self) -> str:
        return "defenses=[" + ", ".join(repr(d) for d in self.defenses) + "]"


def _check_optimizer(encoder: nn.Module, optimizer) -> None:
    """Every trainable parameter of the encoder is in the optimizer (Opacus refuses the same mismatch)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    trainable = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if id(p) not in held]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ValueError(f"optimizer: holds {len(trainable) - len(missing)} of the encoder's {len(trainable)} trainable "
                         f"parameter tensors (missing: {shown}); build it from encoder.parameters() (and the head's), "
                         f"or freeze those with requires_grad_(False)")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _check_shapes(encoder: nn.Module, head, data, num_classes) -> None:
    """The encoder takes ``data``'s inputs, the head its features, and the labels fit the head's classes:
    checked on two inputs, eval mode, no gradients, the random state untouched (modes restored)."""
    try:
        x, y = next(iter(iter_batches(data, 2)))
    except StopIteration:
        raise ValueError("data: it holds no (input, label) pair") from None
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    p = next(encoder.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    modes = [(m, m.training) for m in (encoder, head) if m is not None]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            for m, _ in modes:
                m.eval()
            try:
                z = encoder(x.to(dev))
            except Exception as exc:
                raise ValueError(f"data: the encoder cannot take its inputs of shape {tuple(x.shape[1:])}: "
                                 f"{_first_line(exc)}") from None
            if not isinstance(z, torch.Tensor) or z.ndim < 1 or z.shape[0] != x.shape[0]:
                raise ValueError(f"encoder: returned {type(z).__name__} {tuple(getattr(z, 'shape', ()))} for "
                                 f"{x.shape[0]} inputs; expected a tensor with one row per input")
            if head is None:
                return
            try:
                logits = head(z)
            except Exception as exc:
                raise ValueError(f"head: cannot take the encoder's features of shape {tuple(z.shape[1:])}: "
                                 f"{_first_line(exc)}") from None
    finally:
        for m, was in modes:
            m.train(was)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(f"head: expected (n, classes) logits, got shape {tuple(getattr(logits, 'shape', ()))}")
    classes = logits.shape[1]
    if num_classes is not None and num_classes != classes:
        raise ValueError(f"num_classes: {num_classes}, but the head outputs {classes} classes")
    labels = torch.as_tensor(_labels(data))
    if labels.numel() and not labels.is_floating_point() and int(labels.max()) >= classes:
        raise ValueError(f"head: outputs {classes} classes, but data has labels up to {int(labels.max())}")


def _labels(data):
    t = data_tensors(data)
    return t[1] if t is not None else torch.zeros(0, dtype=torch.long)


def defend(*, encoder: nn.Module, defenses=(), optimizer=None, head: nn.Module | None = None, data=None,
           num_classes: int | None = None, device=None, generator: torch.Generator | None = None,
           seed: int = 0) -> DefendedEncoder:
    """Attach defenses to your encoder (and optimizer) for your own training loop.

    Parameters
    ----------
    encoder : nn.Module
        Your client model; maps inputs to features.
    defenses : list
        Each ``"name:k=v,..."`` (e.g. ``"cem:lam=0.01"``), ``(name, {params})``, a
        :class:`~empirics.specs.DefenseSpec` or a :class:`~.base.Defense` object (used as is),
        from the registry (:func:`~.base.available_defenses`); applied in list order.
    optimizer : torch.optim.Optimizer, optional
        Your optimizer (CEM ``objective="code"`` reads its current learning rate).  The defenses'
        own parameters (ARL's proxy) are optimised internally, never added to it.
    head : nn.Module, optional
        Your server model; needed only by ``tl_freeze`` with ``public_data`` (it pre-trains
        encoder + head) and as the default of :meth:`DefendedEncoder.split_model`.
    data : (x, y) tensors, Dataset, DataLoader or DataSplit, optional
        Your training set.  CEM encodes it (in order, eval mode, never through the loader's
        sampler) for its per-epoch mixture estimate (Alg. 1 line 4); without it CEM works from
        the features of the previous epoch's steps and ``objective="paper"`` cannot start (a
        ``ValueError`` at its first loss says so).
    num_classes : int, optional
        Number of classes (CEM otherwise takes the largest label + 1 of the data it fits).
    device : str or torch.device, optional
        Move encoder (and head) there first (``"auto"``: CUDA when available); default: leave
        them where they are — the defenses follow the encoder's parameters.
    generator : torch.Generator, optional
        Source of the training-time randomness (noise, dropout masks); default: the "features"
        stream of ``seed``.
    seed : int
        Master seed of the default generators and of specs' unset ``seed`` parameters.

    Returns
    -------
    DefendedEncoder

    Raises
    ------
    ValueError
        One line each, before anything is attached: an unknown defense name or parameter (naming it
        and listing the valid ones); an encoder or head that is not an ``nn.Module``; an optimizer
        that does not hold every trainable parameter of the encoder (as Opacus refuses it: the
        defenses' gradients would reach parameters nobody updates — build it from
        ``encoder.parameters()``, or freeze those with ``requires_grad_(False)``); unreadable
        ``data``; data the encoder cannot take, features the head cannot take, or labels beyond the
        head's classes (checked on two inputs of ``data``, in eval mode, without gradients and
        without touching the random state).

    Examples
    --------
    With every defense at strength 0 the defended encoder is the encoder:

    >>> import torch
    >>> enc = torch.nn.Linear(3, 2)
    >>> defended = defend(encoder=enc, defenses=["noise:sigma=0", "cem:lam=0"])
    >>> x = torch.ones(4, 3)
    >>> bool(torch.equal(defended(x), enc(x))), float(defended.loss(torch.zeros(4, dtype=torch.long)))
    (True, 0.0)
    """
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"encoder: expected a torch.nn.Module, got {type(encoder).__name__}")
    if head is not None and not isinstance(head, nn.Module):
        raise ValueError(f"head: expected a torch.nn.Module or None, got {type(head).__name__}")
    if optimizer is not None and not hasattr(optimizer, "param_groups"):
        raise ValueError(f"optimizer: expected a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"num_classes: expected a positive integer or None, got {num_classes!r}")
    if data is not None:
        data_len(data)  # readable (raises ValueError naming what came)
    defs = resolve_defenses(defenses, seed=seed)
    if device is not None:
        dev = resolve_device(device)
        encoder.to(dev)
        if head is not None:
            head.to(dev)
    if optimizer is not None:
        _check_optimizer(encoder, optimizer)
    if data is not None:
        _check_shapes(encoder, head, data, num_classes)
    if num_classes is not None:
        for d in defs:
            if hasattr(d, "num_classes") and getattr(d, "num_classes") is None:
                d.num_classes = num_classes
    defended = DefendedEncoder(encoder, defs, optimizer=optimizer, head=head, data=data, generator=generator,
                               seed=seed)
    for d in defs:
        model, opt = d.attach(defended, defended.optimizer, data=data)
        if model is not defended:
            raise ValueError(f"{d.name}: attach() must return the defended encoder it was given")
        defended.optimizer = opt
    return defended

