"""check-defense's memory guard: its peak memory estimated from the encoder's shapes, before the run.

:func:`probe_encoder` runs the user's encoder once, on one input (eval mode, no gradients, the
global random state untouched), and reads its output size k, the sizes of its layers' outputs and
its parameter count; :func:`check_defense_plan` adds up what the check will hold
(:class:`empirics.memory.MemoryPlan`) from those shapes and the settings; :func:`guard_check_defense`
refuses (one line, exit 2) when that is above the available memory, naming the largest part and the
option that makes it smaller — ``--max-samples`` for everything held per input, nothing for the k × k
covariances of the feature mixture (then it says how many outputs per input would fit).

What is counted (bytes; float32 = 4, float64 = 8; n = training inputs used, m = held-out inputs):

* throughout: the held-out observations (m × k × 4) and the head (k × 128 weights with gradient and
  two Adam moments, 16 bytes each);
* the largest of the phases: the output validation (256 inputs × k, three float32 passes and three
  float64 differences), the head's input statistics (2000 × k × 4 × 3), training (a batch of 64 × the
  layer outputs × 4 × 3, and 12 bytes per trainable encoder parameter when the encoder trains), the
  decoder attack (its raw features, first and current observations of n inputs, n × k × 4 × 3, and
  its MLP k × 256 × 16), the optimization attack (m × (d + layer outputs) × 4 × 4), and the analysis:
  estimated route — features of min(n, 5000) inputs (× 8), the fitted mixture's K = classes ×
  ``k_per_class`` full k × k covariances and their factorisations (about 5 such arrays of K × k² × 8),
  Fisher information (64 × layer outputs × 4 × 3); certified route (an affine encoder on a known
  prior) — the map A (k × d × 8 × 3), the Monte-Carlo draws (n_mc × (d + 2k) × 8) and the pushed-forward
  mixture (5 × K × k² × 8).
"""

from __future__ import annotations

import torch
from torch import nn

from ..memory import FLOAT32, FLOAT64, MemoryPlan, Need, available_memory, fmt_bytes, largest_fitting
from .affine import affine_by_construction
from .check_bounds import FISHER_BATCH, FIT_MAX_SAMPLES
from .check_deploy import HEAD_BATCH, HEAD_HIDDEN, HEAD_STATS_SAMPLES

__all__ = ["probe_encoder", "check_defense_plan", "guard_check_defense", "VALIDATION_INPUTS"]

#: inputs the encoder's output is validated on (two passes measure internal noise)
VALIDATION_INPUTS = 256
#: arrays of K × k² float64 alive at once while a mixture's covariances are factorised and bounded
MIXTURE_WORK_ARRAYS = 5
#: hidden width of the decoder attack's MLP
DECODER_HIDDEN = 256


@torch.no_grad()
def probe_encoder(enc: nn.Module, x1: torch.Tensor) -> dict:
    """Shapes of the encoder on one input: ``k`` (output numbers per input), ``layer_outputs`` (the
    numbers its leaf modules output per input, summed), ``params`` and ``trainable`` parameter counts.

    Runs ``enc`` once in eval mode on ``x1`` (one input) under a forked random state; materialises
    lazy layers.  An error in the user's forward pass is left to the validation that follows.

    Parameters
    ----------
    enc : torch.nn.Module
        The encoder.
    x1 : torch.Tensor, shape (1, *input_shape)
        One input.

    Returns
    -------
    dict
    """
    sizes: list = []

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out[:1].numel())

    leaves = [m for m in enc.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was = enc.training
    enc.eval()
    p = next(enc.parameters(), None)
    try:
        with torch.random.fork_rng(devices=[]):
            out = enc(x1.to(p.device) if p is not None else x1)
    finally:
        for h in handles:
            h.remove()
        enc.train(was)
    k = int(out[0].numel()) if isinstance(out, torch.Tensor) and out.ndim >= 1 and len(out) else 0
    return {"k": k, "layer_outputs": int(sum(sizes)) + k, "params": sum(q.numel() for q in enc.parameters()),
            "trainable": sum(q.numel() for q in enc.parameters() if q.requires_grad)}


def check_defense_plan(probe: dict, *, d: int, n_train: int, n_test: int, num_classes: int, k_per_class: int,
                       n_mc: int, train_encoder: bool, attacks, certified: bool,
                       prior_components: int | None = None) -> MemoryPlan:
    """What a check of an encoder with these shapes holds (see the module docstring).

    Parameters
    ----------
    probe : dict
        :func:`probe_encoder`'s shapes (``k``, ``layer_outputs``, ``trainable``).
    d : int
        Numbers per input.
    n_train, n_test : int
        Training and held-out inputs used.
    num_classes, k_per_class : int
        Classes, and mixture components per class of the estimated route.
    n_mc : int
        Monte-Carlo draws (certified route).
    train_encoder : bool
        The encoder trains (its gradients and Adam moments).
    attacks : sequence of str
        Attack names.
    certified : bool
        The certified route (affine encoder, known prior) rather than the estimated one.
    prior_components : int, optional
        Components of the known prior.

    Returns
    -------
    MemoryPlan
    """
    k, act = probe["k"], probe["layer_outputs"]
    samples = "--max-samples"
    resident = [Need(f"the {n_test:,} held-out observations ({n_test:,} × {k:,} float32)", n_test * k * FLOAT32,
                     samples),
                Need(f"the head's first layer ({k:,} × {HEAD_HIDDEN}, with gradient and Adam moments)",
                     k * HEAD_HIDDEN * FLOAT32 * 4)]
    v = min(VALIDATION_INPUTS, n_train)
    phases = {
        "validation": [Need(f"the output validation ({v} inputs × {k:,}, three passes and their differences)",
                            v * k * (3 * FLOAT32 + 3 * FLOAT64))],
        "head statistics": [Need(f"the head's input statistics ({min(HEAD_STATS_SAMPLES, n_train):,} × {k:,})",
                                 min(HEAD_STATS_SAMPLES, n_train) * k * FLOAT32 * 3, samples)],
        "training": [Need(f"training activations (batch {HEAD_BATCH} × {act:,} layer outputs)",
                          HEAD_BATCH * act * FLOAT32 * 3)]
                    + ([Need(f"the encoder's gradients and Adam moments ({probe['trainable']:,} parameters)",
                             probe["trainable"] * FLOAT32 * 3)] if train_encoder else []),
    }
    if any(a in ("decoder", "gan") for a in attacks):
        phases["decoder attack"] = [
            Need(f"the decoder attack's observations of the {n_train:,} training inputs ({n_train:,} × {k:,} × 3)",
                 n_train * k * FLOAT32 * 3, samples),
            Need(f"the decoder's first layer ({k:,} × {DECODER_HIDDEN}, with Adam)", k * DECODER_HIDDEN * FLOAT32 * 4)]
    if "optimization" in attacks:
        phases["optimization attack"] = [Need(f"the optimization attack on {n_test:,} inputs ({d + act:,} numbers each)",
                                              n_test * (d + act) * FLOAT32 * 4, samples)]
    if certified:
        kc = int(prior_components or 1)
        phases["analysis"] = [
            Need(f"the affine map and its float64 copies ({k:,} × {d:,})", k * d * FLOAT64 * 3),
            Need(f"the Monte-Carlo draws ({n_mc:,} × ({d:,} + 2 × {k:,}) float64)", n_mc * (d + 2 * k) * FLOAT64,
                 "--n-mc"),
            Need(f"the pushed-forward mixture: {kc} covariances of {k:,} × {k:,} features, float64, and their "
                 f"factorisations", MIXTURE_WORK_ARRAYS * kc * k * k * FLOAT64)]
    else:
        m = min(n_train, FIT_MAX_SAMPLES)
        K = num_classes * k_per_class
        phases["analysis"] = [
            Need(f"the features of {m:,} training inputs ({m:,} × {k:,} float64)", m * k * FLOAT64, samples),
            Need(f"the fitted feature mixture: {K} full covariances of {k:,} × {k:,} features, float64, and their "
                 f"factorisations", MIXTURE_WORK_ARRAYS * K * k * k * FLOAT64),
            Need(f"the Fisher information's graph ({FISHER_BATCH} × {act:,} layer outputs)",
                 FISHER_BATCH * act * FLOAT32 * 3)]
    return MemoryPlan("this check", resident, phases)


def guard_check_defense(probe: dict, *, available=None, **settings) -> MemoryPlan:
    """Refuse a check whose estimated peak memory is above the available memory (one line; see the
    module docstring); returns the plan when it fits.

    Parameters
    ----------
    probe : dict
        :func:`probe_encoder`'s shapes.
    available : (bytes, source), optional
        Default: :func:`empirics.memory.available_memory`.
    **settings
        :func:`check_defense_plan`'s keyword arguments.

    Returns
    -------
    MemoryPlan
    """
    avail = available_memory() if available is None else available
    plan = check_defense_plan(probe, **settings)
    if plan.peak() <= avail[0]:
        return plan
    big = plan.largest()
    hint = ""
    if not big.reduce:  # what no option shrinks grows with the output size: say what would fit
        ratio = probe["layer_outputs"] / max(probe["k"], 1)

        def at(k):
            return check_defense_plan({**probe, "k": k, "layer_outputs": int(k * ratio)}, **settings).peak()
        fits = largest_fitting(at, probe["k"], avail[0])
        hint = (f"an encoder with at most about {fits:,} outputs per input fits ({fmt_bytes(avail[0])}); this one has "
                f"{probe['k']:,}")
    plan.check(avail, hint=hint)
    return plan


def route_is_certified(encoder: nn.Module, prior) -> bool:
    """Whether the check will take the certified route (affine by construction, known prior)."""
    return prior is not None and not affine_by_construction(encoder)
