"""The one seeded training loop for split models, built on :func:`empirics.defenses.defend`.

:func:`train` is a plain PyTorch loop around the same entry point a user's own loop uses — the
defenses act only through the defended encoder, so a user's loop with ``defend`` and ``train``
give the same weights under the same seed and batches (tested)::

    defended = defend(encoder=model.encoder, head=model.head, defenses=defenses, optimizer=opt,
                      data=train, generator=<"features" stream>)       # attach hooks, in list order
    for epoch:
        for batch (x, y):                                              # order: "shuffle" stream
            logits = model.head(defended(x))          # on_epoch_start at an epoch's first step;
                                                      # encoder, chain of transform_features
            loss = CE(logits, y) + defended.loss(y)   # Σ extra_loss(step)
            backward; optimizer.step(); defended.step()                # after_step
        defended.epoch_end()                                           # on_epoch_end

Reproducibility
---------------
* Batches are drawn by a CPU ``torch.Generator`` seeded from ``seed``; defenses get their own
  generator on the training device (``Step.generator`` / ``EpochContext.generator``); code that
  uses the global torch RNG runs inside ``torch.random.fork_rng`` seeded from ``seed`` too, so the
  caller's global state is untouched.  On CPU the same seed gives bit-identical weights.
* A checkpoint (``checkpoint=path``) is written atomically and durably (:func:`theory._io.atomic_write`)
  after every epoch: weights, optimizer state, all generator states, the history and every
  defense's ``state_dict()``.  It is read with ``torch.load(..., weights_only=True)``, so a
  defense's state must be tensors / numbers / strings / lists / dicts.  If the file exists when
  :func:`train` starts, training resumes after its last epoch; the final weights equal those of
  an uninterrupted run (tested by killing a training subprocess).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from theory._io import atomic_write, jsonable

from .data import ArrayDataset, as_dataset
from .defenses.base import Defense
from .defenses.defended import defend, resolve_defenses
from .device import resolve_device
from .models import SplitModel
from .records import diff_configs
from .seeding import stream_seed, torch_generator

__all__ = ["TrainResult", "train", "evaluate", "validate_model_data", "make_optimizer",
           "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


@dataclass
class TrainResult:
    """What :func:`train` returns.  ``history`` has one dict per epoch (loss, accuracy, ...)."""

    model: SplitModel
    optimizer: Any
    history: list[dict] = field(default_factory=list)
    epochs: int = 0
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    checkpoint: str | None = None
    defended: Any = None  # the DefendedEncoder the loop trained through (its defenses' state)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    def to_dict(self) -> dict:
        return {"history": self.history, "epochs": self.epochs, "resumed_from_epoch": self.resumed_from_epoch,
                "seconds": self.seconds, "device": self.device, "checkpoint": self.checkpoint}


def make_optimizer(optimizer, params, lr: float):
    """``None``/``"adam"`` → Adam, ``"sgd"`` → SGD(momentum 0.9), an optimizer instance as is, or a
    callable ``params -> optimizer``.

    Parameters
    ----------
    optimizer : None, str, torch.optim.Optimizer or callable
        What to use.
    params : iterable of torch.nn.Parameter
        The parameters to optimise.
    lr : float
        Learning rate.

    Returns
    -------
    torch.optim.Optimizer
    """
    params = list(params)
    if optimizer is None or optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        return optimizer(params)
    raise ValueError(f"optimizer: expected None, 'adam', 'sgd', an Optimizer or a factory, got {optimizer!r}")


def validate_model_data(model, data: ArrayDataset, *, name: str = "data") -> None:
    """Check ``data`` against ``model`` before any training: shapes, range, a dry forward pass.

    Raises ``ValueError`` for: a model that is not a :class:`SplitModel`; input shape differing
    from ``model.input_shape``; values outside [0, 1] when ``model.unit_range``; labels outside
    the head's output size; encoder/head dimension mismatch (found by a forward pass on one sample).

    Parameters
    ----------
    model : SplitModel
        The model.
    data : ArrayDataset
        Inputs (n, *model.input_shape) and labels (n,).
    name : str
        The argument's name in messages.

    Returns
    -------
    None
    """
    if not isinstance(model, SplitModel):
        raise ValueError(f"model: expected an empirics.models.SplitModel, got {type(model).__name__}")
    if model.input_shape is not None and tuple(data.input_shape) != tuple(model.input_shape):
        raise ValueError(f"{name}: expected inputs of shape (N, {', '.join(map(str, model.input_shape))}) "
                         f"for this model, got (N, {', '.join(map(str, data.input_shape))})")
    if model.unit_range:
        lo, hi = float(data.x.min()), float(data.x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name}: expected inputs in [0, 1] for this model, got range [{lo:.4g}, {hi:.4g}]")
    p = next(model.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x0 = data.x[:2].to(dev)
            try:
                z = model.encode(x0)
            except RuntimeError as exc:
                raise ValueError(f"{name}: the encoder cannot process inputs of shape "
                                 f"{tuple(data.input_shape)}: {str(exc).splitlines()[0]}") from None
            try:
                # a throwaway generator: the dry run must not draw from the caller's global RNG
                logits = model.head(model.defend(z, training=False, generator=torch.Generator(device=dev)))
            except RuntimeError as exc:
                raise ValueError(f"model: encoder output of shape {tuple(z.shape[1:])} does not fit the head: "
                                 f"{str(exc).splitlines()[0]}") from None
    finally:
        model.train(was)
    if logits.ndim != 2:
        raise ValueError(f"model: expected head output (N, num_classes), got shape {tuple(logits.shape)}")
    if int(data.y.max()) >= logits.shape[1]:
        raise ValueError(f"{name}: labels go up to {int(data.y.max())} but the head has {logits.shape[1]} outputs")


@torch.no_grad()
def evaluate(model: SplitModel, data, *, batch_size: int = 512, device=None, generator=None, seed: int = 0) -> dict:
    """Accuracy and mean cross-entropy of ``model`` (eval mode, deployed defenses) on ``data``.

    Stochastic defenses draw from ``generator`` (default: a fresh one seeded with ``seed``), so
    the result is reproducible.

    Parameters
    ----------
    model : SplitModel
        The model.
    data : ArrayDataset, DataSplit or (x, y)
        Inputs (n, *input_shape) and labels (n,).
    batch_size : int
        Inputs per forward pass.
    device : str or torch.device, optional
        Where (default: the model's).
    generator : torch.Generator, optional
        For stochastic defenses.
    seed : int
        Seed of the default generator.

    Returns
    -------
    dict
        ``{"accuracy": float, "loss": float}``.
    """
    data = as_dataset(data)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    if generator is None:
        generator = torch_generator(int(seed), "eval", device=dev)
    was = model.training
    model.eval()
    correct, loss, n = 0, 0.0, len(data)
    try:
        for i in range(0, n, batch_size):
            x, y = data.x[i:i + batch_size].to(dev), data.y[i:i + batch_size].to(dev)
            logits = model.head(model.client_features(x, training=False, generator=generator))
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was)
    return {"accuracy": correct / n, "loss": loss / n}


def _gen_state(g: torch.Generator) -> torch.Tensor:
    return g.get_state().cpu()


def _save_checkpoint(path: Path, payload: dict) -> None:
    atomic_write(path, lambda fh: torch.save(payload, fh))


def _identity(identity, model, opt, defenses, seed, batch_size, lr, weight_decay) -> dict:
    auto = {"seed": int(seed), "batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay),
            "optimizer": type(opt).__name__, "defenses": [jsonable(d.config()) for d in defenses],
            "parameters": {k: list(v.shape) for k, v in model.state_dict().items()}}
    return jsonable(identity) if identity is not None else auto


def _load_checkpoint(ckpt: Path, dev, ident: dict, n_defenses: int) -> dict:
    """Read and check a checkpoint; every problem is one ``ValueError`` naming the file."""
    hint = "delete it or pass --fresh to start over, or use another --out"
    try:
        state = torch.load(ckpt, map_location=dev, weights_only=True)
    except Exception as exc:  # truncated, garbage, empty, not a torch file, unsafe pickle ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"checkpoint: {ckpt} is not a readable checkpoint ({type(exc).__name__}"
                         f"{': ' + msg[:120] if msg else ''}); {hint}") from None
    need = ("version", "epoch", "model", "optimizer", "rng", "defenses", "history")
    if not isinstance(state, dict) or any(k not in state for k in need):
        raise ValueError(f"checkpoint: {ckpt} is not a training checkpoint of this package (missing "
                         f"{[k for k in need if not isinstance(state, dict) or k not in state]}); {hint}")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint: {ckpt} has format version {state.get('version')!r}, expected "
                         f"{CHECKPOINT_VERSION}; {hint}")
    old = state.get("identity")
    if not isinstance(old, dict):
        raise ValueError(f"checkpoint: {ckpt} carries no run configuration (written by an older version); {hint}")
    if old != ident:
        diffs = diff_configs(old, ident)
        shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs) - 6} more)" if len(diffs) > 6 else "")
        raise ValueError(f"checkpoint: {ckpt} was written for a different configuration ({shown}); {hint}")
    if len(state["defenses"]) != n_defenses:
        raise ValueError(f"checkpoint: {ckpt} holds {len(state['defenses'])} defense states, the run has "
                         f"{n_defenses} defenses; {hint}")
    return state


def train(model: SplitModel, data, *, epochs: int, batch_size: int = 128, lr: float = 1e-3,
          optimizer=None, defenses=None, seed: int = 0, device="auto", checkpoint=None,
          progress: bool = True, eval_data=None, weight_decay: float = 0.0,
          callback: Callable[[int, dict], None] | None = None, identity: dict | None = None,
          fresh: bool = False) -> TrainResult:
    """Train a split model with cross-entropy plus the defenses' extra losses.

    Parameters
    ----------
    model : SplitModel
    data : ArrayDataset, DataSplit (its ``train``) or ``(x, y)``
    epochs : int
        Total number of epochs (a resumed run trains only the missing ones).
    batch_size, lr : int, float
    optimizer : None, 'adam', 'sgd', torch.optim.Optimizer or callable(params) -> Optimizer
    defenses : list of Defense or specs (``"cem:lam=0.01"``), optional
        Defaults to ``model.defenses``; when given, it replaces ``model.defenses`` so the deployed
        model applies exactly the defenses it was trained with.
    seed : int
        Seeds batch order and the defenses' generator.
    device : str
        ``"auto"`` → CUDA when available.
    checkpoint : path, optional
        Written atomically after every epoch; resumed from when present — but only if it was
        written for the same run: its stored identity (``identity``, or by default seed, batch
        size, learning rate, weight decay, optimizer, every defense's configuration and the
        model's parameter shapes) must equal this run's, else ``ValueError`` listing the
        differences.  An unreadable checkpoint is a ``ValueError`` naming the file.
    identity : dict, optional
        Plain-data description of the run stored in (and compared with) the checkpoint, e.g.
        :meth:`empirics.specs.TrainConfig.checkpoint_identity` (everything but ``epochs``).
    fresh : bool
        Delete an existing checkpoint first and train from scratch.
    progress : bool
        tqdm progress bar on stderr.
    eval_data : dataset, optional
        Evaluated after every epoch (``test_accuracy`` in the history).
    weight_decay : float
        The optimizer's weight decay (built-in optimizers only).
    callback : callable(epoch, record), optional
        Called after every epoch with the history record.

    Returns
    -------
    TrainResult
    """
    t0 = time.perf_counter()
    data = as_dataset(data)
    if not isinstance(model, SplitModel):
        raise ValueError(f"model: expected an empirics.models.SplitModel, got {type(model).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if defenses is not None:
        model.defenses = resolve_defenses(defenses, seed=int(seed))
    defenses = list(model.defenses)
    for d in defenses:
        if not isinstance(d, Defense):
            raise ValueError(f"defenses: expected Defense instances, got {type(d).__name__}")
    dev = resolve_device(device)
    model.to(dev)
    validate_model_data(model, data)
    if eval_data is not None:
        eval_data = as_dataset(eval_data, name="eval_data")
        validate_model_data(model, eval_data, name="eval_data")

    opt = make_optimizer(optimizer, model.parameters(), lr)
    if weight_decay:
        for g in opt.param_groups:
            g["weight_decay"] = weight_decay
    shuffle_gen = torch_generator(int(seed), "shuffle")
    feat_gen = torch_generator(int(seed), "features", device=dev)
    # the one entry point every loop uses (attach hooks run here, in list order)
    defended = defend(encoder=model.encoder, head=model.head, defenses=defenses, optimizer=opt, data=data,
                      generator=feat_gen, seed=int(seed))
    opt = defended.optimizer
    history: list[dict] = []
    start_epoch = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    ident = _identity(identity, model, opt, defenses, seed, batch_size, lr, weight_decay)
    if ckpt is not None and fresh and ckpt.exists():
        ckpt.unlink()

    xs, ys = data.x.to(dev), data.y.to(dev)
    n = len(data)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(stream_seed(int(seed), "torch"))
        if ckpt is not None and ckpt.exists():
            state = _load_checkpoint(ckpt, dev, ident, len(defenses))
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            shuffle_gen.set_state(state["rng"]["shuffle"])
            torch.set_rng_state(state["rng"]["torch"])
            if dev.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], dev)
            start_epoch = int(state["epoch"])
            defended.load_defense_state({"epoch": start_epoch, "steps": start_epoch * steps_per_epoch,
                                         "generators": {"features": state["rng"]["features"]},
                                         "defenses": state["defenses"]})
            history = list(state["history"])

        bar = tqdm(range(start_epoch, epochs), disable=not progress, desc="train", unit="epoch",
                   initial=start_epoch, total=epochs, leave=False)
        for epoch in bar:
            model.train()
            defended.train()
            perm = torch.randperm(n, generator=shuffle_gen).to(dev)
            tot_loss, tot_correct = 0.0, 0
            for b in range(0, n, batch_size):
                idx = perm[b:b + batch_size]
                x, y = xs[idx], ys[idx]
                logits = model.head(defended(x))
                loss = F.cross_entropy(logits, y) + defended.loss(y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"train: non-finite loss at epoch {epoch}, step {defended.steps - 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                defended.step()
                tot_loss += float(loss.detach()) * len(idx)
                tot_correct += int((logits.detach().argmax(1) == y).sum())
            defended.epoch_end()
            rec = {"epoch": epoch + 1, "loss": tot_loss / n, "train_accuracy": tot_correct / n}
            if eval_data is not None:
                ev = evaluate(model, eval_data, device=dev)
                rec["test_accuracy"], rec["test_loss"] = ev["accuracy"], ev["loss"]
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", acc=f"{rec['train_accuracy']:.3f}")
            if ckpt is not None:
                rng = {"shuffle": _gen_state(shuffle_gen), "features": _gen_state(feat_gen),
                       "torch": torch.get_rng_state()}
                if dev.type == "cuda":
                    rng["cuda"] = torch.cuda.get_rng_state(dev)
                _save_checkpoint(ckpt, {
                    "version": CHECKPOINT_VERSION, "identity": ident, "epoch": epoch + 1, "seed": int(seed),
                    "batch_size": batch_size, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "rng": rng, "defenses": [d.state_dict() for d in defenses], "history": history,
                })
            if callback is not None:
                callback(epoch, rec)
        bar.close()
    model.eval()
    return TrainResult(model=model, optimizer=opt, history=history, epochs=epochs,
                       resumed_from_epoch=start_epoch, seconds=time.perf_counter() - t0,
                       device=str(dev), checkpoint=str(ckpt) if ckpt is not None else None,
                       defended=defended)
