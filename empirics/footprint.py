"""Shapes of a model before it exists, and the memory plans of training and attacks built from them.

:func:`model_shapes` builds a model on PyTorch's ``meta`` device — parameters and activations with
shapes but no storage, so even a model that would not fit costs nothing — and runs one input
through it to read its parameter count, its layers' output sizes and its feature size.
:func:`guard_training` and :func:`guard_attacks` turn those shapes into a
:class:`empirics.memory.MemoryPlan` and refuse (one line, exit 2 on the command line) a run that
would need more than the available memory, naming the largest part and the option that makes it
smaller (``--batch-size`` for activations, ``--bottleneck`` / a smaller ``--preset`` for parameters,
``covariance=diag`` in a CEM spec for its k × k covariances).

What is counted (float32 = 4 bytes unless said): parameters with gradient and optimiser state
(16 bytes each with Adam, 12 with SGD); a training batch of the layers' outputs three times (forward
values, gradients, a temporary); evaluation batches of 512; CEM's per-epoch mixture — the features
of the training set in float64 and ``classes × k_per_class`` covariances (full: k × k, five such
arrays at once while they are factorised; diag: k); a trained attack's observations of the
auxiliary set (three copies of n × k) and its decoder's first layer (k × 256 with Adam); the
optimization attack's inputs and graph for the held-out set.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .memory import FLOAT32, FLOAT64, MemoryPlan, Need

__all__ = ["model_shapes", "layer_shapes", "training_plan", "attack_needs", "guard_training", "guard_attacks",
           "EVAL_BATCH", "MIXTURE_WORK_ARRAYS"]

#: inputs per evaluation batch (empirics.training.evaluate)
EVAL_BATCH = 512
#: arrays of K × k² float64 alive at once while a mixture's full covariances are factorised
MIXTURE_WORK_ARRAYS = 5
#: hidden width of a trained attack's MLP decoder
DECODER_HIDDEN = 256


@torch.no_grad()
def layer_shapes(module, x) -> tuple[int, object]:
    """(numbers output by ``module``'s leaf layers per input, summed; the output) for a batch ``x``.

    Parameters
    ----------
    module : torch.nn.Module
        Any module (on any device, ``meta`` included).
    x : torch.Tensor, shape (n, ...)
        Its input.

    Returns
    -------
    tuple of (int, torch.Tensor)
    """
    sizes: list = []

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out[:1].numel())
    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        out = module(x)
    finally:
        for h in handles:
            h.remove()
    return int(sum(sizes)), out


def model_shapes(build, input_shape) -> dict:
    """Shapes of the split model ``build()`` makes, built on the ``meta`` device (no memory used).

    Parameters
    ----------
    build : callable () -> SplitModel
        Builds the model (under ``torch.device("meta")``).
    input_shape : tuple of int
        One input's shape.

    Returns
    -------
    dict
        ``params``, ``k`` (features per input), ``encoder_outputs`` and ``head_outputs`` (numbers the
        leaf layers output per input).
    """
    with torch.device("meta"):
        model = build()
    x = torch.empty((1, *input_shape), device="meta")
    model.eval()
    enc_out, z = layer_shapes(model.encoder, x)
    head_out, _ = layer_shapes(model.head, z)
    return {"params": sum(p.numel() for p in model.parameters()), "k": int(z[0].numel()),
            "encoder_outputs": enc_out, "head_outputs": head_out}


def _cem_needs(defenses, k: int, n_train: int, num_classes: int) -> list:
    out = []
    for d in defenses:
        if d.name != "cem" or not float(dict(d.params).get("lam", 0) or 0) > 0:
            continue
        p = dict(d.params)
        K = num_classes * int(p.get("k_per_class") or p.get("clusters_per_class") or 3)
        diag = p.get("covariance") == "diag" or p.get("objective") == "code"
        out.append(Need(f"CEM's features of the {n_train:,} training inputs ({n_train:,} × {k:,} float64)",
                        n_train * k * FLOAT64))
        if diag:
            out.append(Need(f"CEM's mixture ({K} diagonal covariances of {k:,} features)", 3 * K * k * FLOAT64))
        else:
            out.append(Need(f"CEM's mixture: {K} full covariances of {k:,} × {k:,} features, float64, and their "
                            f"factorisations", MIXTURE_WORK_ARRAYS * K * k * k * FLOAT64, "covariance=diag in the cem "
                            "spec (or a smaller --bottleneck)"))
    return out


def training_plan(shapes: dict, *, batch_size: int, n_train: int, num_classes: int, optimizer: str = "adam",
                  defenses=()) -> MemoryPlan:
    """What training a model of these shapes holds (see the module docstring).

    Parameters
    ----------
    shapes : dict
        :func:`model_shapes`'s.
    batch_size, n_train, num_classes : int
        Training batch, training inputs, classes.
    optimizer : {'adam', 'sgd'}
        Optimiser (its state per parameter).
    defenses : sequence of DefenseSpec
        The defenses (CEM's mixture is counted).

    Returns
    -------
    MemoryPlan
    """
    P, k = shapes["params"], shapes["k"]
    act = shapes["encoder_outputs"] + shapes["head_outputs"]
    per_param = 16 if optimizer == "adam" else 12
    resident = [Need(f"the model's {P:,} parameters with gradients and {optimizer} state", P * per_param,
                     "--bottleneck or a smaller --preset")]
    phases = {"training": [Need(f"a training batch's activations ({batch_size} × {act:,} layer outputs)",
                                batch_size * act * FLOAT32 * 3, "--batch-size (or a smaller --bottleneck)")]
                          + _cem_needs(defenses, k, n_train, num_classes),
              "evaluation": [Need(f"evaluation batches ({EVAL_BATCH} × {act:,} layer outputs)",
                                  EVAL_BATCH * act * FLOAT32 * 2, "a smaller --bottleneck or --preset")]}
    return MemoryPlan("training", resident, phases)


def attack_needs(attacks, *, k: int, d: int, act: int, n_aux: int, n_test: int, samples: str = "") -> dict:
    """Phases of the attacks: ``{phase: [Need]}`` (see the module docstring).

    Parameters
    ----------
    attacks : sequence of str
        Attack names.
    k, d, act : int
        Features, input numbers and encoder layer outputs per input.
    n_aux, n_test : int
        Auxiliary (training) and held-out inputs.
    samples : str
        The option that reduces the number of inputs ("" when none).

    Returns
    -------
    dict
    """
    out = {}
    if any(a in ("decoder", "gan") for a in attacks):
        out["decoder attack"] = [
            Need(f"the decoder attack's observations of {n_aux:,} auxiliary inputs ({n_aux:,} × {k:,} × 3)",
                 n_aux * k * FLOAT32 * 3, samples),
            Need(f"the decoder's first layer ({k:,} × {DECODER_HIDDEN}, with Adam)", k * DECODER_HIDDEN * FLOAT32 * 4)]
    if "optimization" in attacks:
        out["optimization attack"] = [Need(f"the optimization attack on {n_test:,} inputs ({d + act:,} numbers each)",
                                           n_test * (d + act) * FLOAT32 * 4, samples)]
    return out


def guard_training(cfg, split, build_model, *, available=None) -> MemoryPlan:
    """Refuse training ``cfg`` (a :class:`~empirics.specs.TrainConfig`) when its estimated peak memory
    is above the available memory; returns the plan otherwise.

    Parameters
    ----------
    cfg : TrainConfig
        The training configuration.
    split : DataSplit or namespace
        Its ``input_shape``, ``num_classes`` and ``train``.
    build_model : callable
        ``build_model(cfg, split)`` → the model (called once on PyTorch's ``meta`` device: shapes only);
        passed in by the runner, so this module never imports the experiments above it.
    available : (bytes, source), optional
        Default: :func:`empirics.memory.available_memory`.

    Returns
    -------
    MemoryPlan
    """
    shapes = model_shapes(lambda: build_model(cfg, SimpleNamespace(input_shape=split.input_shape,
                                                                    num_classes=split.num_classes)),
                          tuple(split.input_shape))
    plan = training_plan(shapes, batch_size=cfg.batch_size, n_train=len(split.train), num_classes=split.num_classes,
                         optimizer=cfg.optimizer, defenses=cfg.defenses)
    plan.check(available)
    return plan


def guard_attacks(model, split, attacks, *, available=None) -> MemoryPlan:
    """Refuse attacking ``model`` when the attacks' estimated peak memory is above the available memory.

    Parameters
    ----------
    model : SplitModel
        The trained model (one input is encoded to read its feature size).
    split : DataSplit
        Its data (the training split is the auxiliary set).
    attacks : sequence of str
        Attack names.
    available : (bytes, source), optional
        Default: :func:`empirics.memory.available_memory`.

    Returns
    -------
    MemoryPlan
    """
    x1 = split.test.x[:1].to(next(model.parameters()).device)
    was = model.training
    model.eval()
    try:
        act, z = layer_shapes(model.encoder, x1)
    finally:
        model.train(was)
    d = int(x1[0].numel())
    plan = MemoryPlan("the attacks", [], attack_needs(attacks, k=int(z[0].numel()), d=d, act=act,
                                                     n_aux=len(split.train), n_test=len(split.test)))
    plan.check(available)
    return plan
