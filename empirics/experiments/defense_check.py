"""check-defense: a user's encoder, as deployed, attacked and held to every bound, with a tested verdict.

Steps (:func:`check_defense`; the command line ``invlimits check-defense`` is a thin adapter):

1. **The encoder.**  ``MODULE:FUNCTION`` (imported — this runs the user's code), a zero-argument
   callable, or an ``nn.Module`` instance; its output is validated (:mod:`.check_encoder`);
   ``weights=`` loads a state_dict into it.  A factory's encoder is trained with a small server
   head under the Gaussian feature noise σ (``noise``); a module instance, ``--weights`` or an
   encoder without trainable parameters is checked *as given* (``encoder_trained: false``), and a
   head is trained only for the accuracy figure (or not at all: ``head=False``).
2. **Attacks** reconstruct held-out inputs from one draw of the deployed observations (every
   attack sees the same observations, so comparisons can be paired): a decoder trained on the
   training split, the white-box optimization attack, and — whenever the channel's posterior is
   known — ``bayes``, the exact posterior mean (:func:`.check_bounds.bayes_attack`).
3. **Bounds** (:mod:`.check_bounds`): when the encoder is affine by construction and the prior is
   a known Gaussian mixture (``synthetic-mixture`` or ``dataset=`` a :class:`theory.GaussianMixture`),
   floors with ``guarantee`` "deterministic" (exact quantities, proved inequalities; where the
   rounding analysis covers the encoder) and "confidence" (Monte-Carlo limits at family-wise level
   ``alpha``); estimates ("none") otherwise — each with its assumptions; "no finite bound" with the
   reason where the theory says nothing.
4. **Verdict** (:mod:`.check_verdict`): every attack against every finite bound as a one-sided
   test at family-wise level 0.1 %; only a significant violation of a guaranteed floor is a bug.

Warnings: a stochastic encoder (two eval-mode passes differ — Theorem 2 assumes ẑ = f(x)
deterministic; ``encoder_noise=`` declares internal Gaussian noise as channel noise), accuracy near
chance (binomial test, :func:`empirics.checks.near_chance`), a failed attack.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from torch import nn

import theory

from theory._io import write_json_atomic
from theory._validate import expect_int

from ..checks import chance_level
from ..data import DataSplit, synthetic_mixture
from ..memory import fmt_bytes
from ..progress import as_progress
from ..kinds.check_defense import (ALPHA, CHECK_ATTACKS, N_MC, PRIOR_DATASET, PRIOR_N_TEST, PRIOR_N_TRAIN,
                                   SPLIT_DATASET, CheckDefenseConfig, CheckDefenseResult, check_mc_settings, check_sigma,
                                   file_hash)
from ..records import Record
from ..registry import fingerprint, load_dataset, spec
from ..specs import AttackSpec
from ..store import RecordStore, make_record
from ..usercode import load_factory
from .check_analysis import analyse
from .check_deploy import deploy, noise_warnings, observe, run_attacks
from .check_encoder import build_encoder, load_weights, module_hash, spec_hash, validate_output
from .check_memory import VALIDATION_INPUTS, guard_check_defense, probe_encoder, route_is_certified
from .check_verdict import comparisons, tightest_floors, verdict
from .common import RunContext
from .runner import device_name

__all__ = ["check_defense", "check_defense_record", "check_defense_config", "run_check", "prepare_subject", "Subject",
           "MIN_SAMPLES"]

#: the fewest inputs ``max_samples`` may leave (the mixture fit needs 2·k_per_class per class)
MIN_SAMPLES = 20

#: VALIDATION_INPUTS (check_memory): inputs the encoder's output is validated on; two passes over
#: them measure internal noise (256 inputs × the features give a relative s.e. of the noise s.d. of
#: at most ~4 %)


@dataclass
class Subject:
    """What is checked: the encoder module, the data (and its prior when known), their identities."""

    encoder: nn.Module
    split: object
    prior: object  # theory.GaussianMixture or None
    label: str
    encoder_hash: str
    dataset: str
    dataset_hash: str | None
    weights: str | None
    weights_hash: str | None
    trainable: bool
    internal_sd: float
    given_module: bool  # an nn.Module instance (checked as given unless told to train it)


def _gmm_hash(g) -> str:
    h = hashlib.sha256()
    for a in (g.weights, g.means, g.covs):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _load_data(dataset, seed: int, n_train: int, n_test: int):
    """(split, known prior or None, dataset name, content hash or None) of a registered name, a
    user's ``theory.GaussianMixture`` (samples drawn, labels = component) or an in-memory DataSplit."""
    if isinstance(dataset, theory.GaussianMixture):
        split = synthetic_mixture(n_train, n_test, gmm=dataset, seed=seed)
        return split, dataset, PRIOR_DATASET, _gmm_hash(dataset)
    if isinstance(dataset, DataSplit):  # not registered: a library call leaves the registry as it was
        return dataset, dataset.meta.get("gmm"), SPLIT_DATASET, fingerprint(dataset)
    split = load_dataset(dataset, seed=seed)
    return split, split.meta.get("gmm"), spec(dataset).name, None


def _first(split, max_samples: int | None):
    """The first ``max_samples`` training and held-out inputs of ``split`` (all of them for None)."""
    if max_samples is None or (len(split.train) <= max_samples and len(split.test) <= max_samples):
        return split
    return DataSplit(split.train.subset(range(min(max_samples, len(split.train)))),
                     split.test.subset(range(min(max_samples, len(split.test)))), split.num_classes, split.name,
                     dict(split.meta))


def prepare_subject(encoder, *, dataset, weights=None, seed: int = 0, n_train: int = PRIOR_N_TRAIN,
                    n_test: int = PRIOR_N_TEST, max_samples: int | None = None, guard=None) -> Subject:
    """Build (or take) the encoder, validate it, load ``weights``; load the data.

    Before the encoder's output is validated (a forward pass over 256 inputs), ``guard(probe, encoder,
    split, prior)`` is called with the shapes of one forward pass on one input
    (:func:`.check_memory.probe_encoder`): the memory guard refuses there, before anything large exists.

    Parameters
    ----------
    encoder : str, callable or torch.nn.Module
        As for :func:`check_defense`.
    dataset : str, theory.GaussianMixture or DataSplit
        As for :func:`check_defense`.
    weights : str or Path, optional
        A state_dict to load.
    seed : int
        The run's master seed.
    n_train, n_test : int
        Samples drawn from a Gaussian-mixture ``dataset``.
    max_samples : int, optional
        Use only the first ``max_samples`` training and held-out inputs.
    guard : callable, optional
        ``guard(probe, encoder, split, prior)``, called before the validation (see above).

    Returns
    -------
    Subject
    """
    split, prior, ds_name, ds_hash = _load_data(dataset, seed, n_train, n_test)
    split = _first(split, max_samples)
    if isinstance(encoder, str):
        obj, label, h = load_factory(encoder), encoder, spec_hash(encoder)
    else:
        obj, h = encoder, None
        label = (f"<{type(encoder).__name__} instance>" if isinstance(encoder, nn.Module)
                 else f"<factory {getattr(encoder, '__qualname__', type(encoder).__name__)}>")
    enc = build_encoder(obj, seed=seed)
    x0 = split.train.x[:VALIDATION_INPUTS]
    if guard is not None:
        try:
            probe = probe_encoder(enc, x0[:1])
        except Exception:  # the user's forward pass: validate_output says what is wrong, in one line
            probe = None
        if probe is not None and probe["k"] > 0:
            guard(probe, enc, split, prior)
    validate_output(enc, x0, seed=seed)  # also materialises lazy layers
    if h is None:
        h = module_hash(enc, factory=None if isinstance(obj, nn.Module) else obj)
    w_hash = None
    if weights is not None:
        load_weights(enc, weights)
        w_hash = file_hash(weights)
    sd = validate_output(enc, x0, seed=seed)
    trainable = any(p.requires_grad for p in enc.parameters())
    return Subject(enc, split, prior, label, h, ds_name, ds_hash, None if weights is None else str(weights), w_hash,
                   trainable, sd, isinstance(obj, nn.Module))


def _attack_specs(attacks, attack_epochs: int, opt_steps: int) -> tuple:
    """Parse attack specs; epochs / steps not given in a spec string take ``attack_epochs`` / ``opt_steps``."""
    out = []
    for a in attacks:
        if isinstance(a, AttackSpec):
            out.append(a)
            continue
        name, _, rest = str(a).partition(":")
        if name.strip() not in CHECK_ATTACKS:
            raise ValueError(f"attacks: check-defense runs {list(CHECK_ATTACKS)} (and bayes by itself, whenever the "
                             f"posterior is known), got {name!r}")
        given = {p.split("=")[0].strip() for p in rest.split(",") if "=" in p}
        over = {}
        if name in ("decoder", "gan") and "epochs" not in given:
            over["epochs"] = attack_epochs
        if name == "optimization" and "steps" not in given:
            over["steps"] = opt_steps
        out.append(AttackSpec.parse(a, **over))
    return tuple(out)


def check_defense_config(subject: Subject, *, noise, encoder_noise=0.0, train_encoder=None, head=True, epochs=15,
                         attacks=(), fisher_samples=256, k_per_class=3, n_mc=N_MC, alpha=ALPHA, n_train=PRIOR_N_TRAIN,
                         n_test=PRIOR_N_TEST, max_samples=None, seed=0) -> CheckDefenseConfig:
    """The configuration (identity) of checking ``subject`` with these settings.

    Parameters
    ----------
    subject : Subject
        What is checked.
    noise, encoder_noise : float
        Channel noise σ and the declared internal noise.
    train_encoder : bool, optional
        Default: train a factory's encoder; check a module instance or loaded weights as given.
    head : bool
        Train a head.
    epochs : int
        Training epochs.
    attacks : tuple of AttackSpec
        The attacks.
    fisher_samples, k_per_class, n_mc : int
        Sizes of the Fisher estimate, the mixture fit and the Monte-Carlo draws.
    alpha : float
        Family-wise level of the confidence floors.
    n_train, n_test : int
        Samples of a Gaussian-mixture prior.
    max_samples : int, optional
        Only the first ``max_samples`` training and held-out inputs were used.
    seed : int
        Master seed.

    Returns
    -------
    CheckDefenseConfig
    """
    if train_encoder is None:  # a factory trains; a module instance or loaded weights are checked as given
        train_encoder = subject.weights is None and not subject.given_module
    train_encoder = bool(train_encoder) and subject.trainable
    if not head and train_encoder:
        raise ValueError("head: training the encoder needs a head; use head=True, or check the encoder as given "
                         "(--weights, a module instance, or train_encoder=False)")
    return CheckDefenseConfig(
        encoder=subject.label, encoder_hash=subject.encoder_hash, weights=subject.weights,
        weights_hash=subject.weights_hash, dataset=subject.dataset, dataset_hash=subject.dataset_hash, noise=noise,
        encoder_noise=encoder_noise, train_encoder=train_encoder, head=bool(head), epochs=epochs, attacks=attacks,
        fisher_samples=fisher_samples, k_per_class=k_per_class, n_mc=n_mc, alpha=alpha, n_train=n_train,
        n_test=n_test, max_samples=max_samples, seed=seed)


# ----------------------------------------------------------------------------- the run

def run_check(subject: Subject, cfg: CheckDefenseConfig, ctx: RunContext) -> CheckDefenseResult:
    """Deploy, attack, bound and judge ``subject`` under ``cfg`` (the runner of kind "check-defense").

    Parameters
    ----------
    subject : Subject
        What is checked.
    cfg : CheckDefenseConfig
        The settings.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    CheckDefenseResult
    """
    warnings: list[str] = []
    prog = as_progress(ctx.progress)
    flags = [p.requires_grad for p in subject.encoder.parameters()]
    try:
        enc_noise = noise_warnings(subject, cfg, warnings)
        if cfg.train_encoder or cfg.head:
            prog.step(f"training {'encoder + head' if cfg.train_encoder else 'the head (encoder as given)'} under "
                      f"noise σ = {cfg.noise:g} ({cfg.epochs} epochs, {len(subject.split.train):,} inputs) ...")
        model, acc, dev = deploy(subject, cfg, ctx, warnings)
        if acc is not None:
            prog.step(f"held-out accuracy {acc:.3f} (chance {chance_level(subject.split.test.y.numpy()):.3f})")
        obs = observe(model, subject.split.test.x, seed=cfg.seed, dev=dev)
        runs = run_attacks(model, subject.split, cfg, ctx, obs, dev, warnings)
        prog.step(f"bounds: {cfg.n_mc:,} Monte-Carlo draws, the mixture and Fisher information ...")
        an = analyse(model, subject, cfg, obs, dev, enc_noise)
    finally:  # a module the user passed keeps its own requires_grad flags
        for p, f in zip(subject.encoder.parameters(), flags):
            p.requires_grad_(f)
    runs = runs + an.attacks
    warnings += an.warnings
    rows = comparisons(runs, an.bounds)
    headline, bug = verdict(rows, an.bounds, runs, warnings, no_certificate=an.why_not)
    test = subject.split.test
    return CheckDefenseResult(
        dataset=subject.dataset, noise=cfg.noise, encoder_noise=cfg.encoder_noise, encoder_trained=cfg.train_encoder,
        head_trained=acc is not None, accuracy=acc, chance=chance_level(test.y.numpy()), n_test=len(test),
        attacks=[r.row() for r in runs], bounds={k: b.to_dict() for k, b in an.bounds.items()}, comparisons=rows,
        warnings=warnings, verdict=headline, bug=bug, certifiable_mse=an.certifiable, affine=an.affine,
        conditional_entropy=an.conditional_entropy, dfil=an.dfil, floors=tightest_floors(an.bounds))


def check_defense_record(encoder, *, dataset="digits", noise: float = 0.1, encoder_noise: float = 0.0, weights=None,
                         train_encoder: bool | None = None, head: bool = True, out=None, epochs: int = 15,
                         attack_epochs: int = 20, attacks: Sequence = ("decoder", "optimization"), seed: int = 0,
                         device="auto", k_per_class: int = 3, progress: bool = False, opt_steps: int = 200,
                         fisher_samples: int = 256, n_mc: int = N_MC, alpha: float = ALPHA,
                         n_train: int = PRIOR_N_TRAIN, n_test: int = PRIOR_N_TEST, max_samples: int | None = None,
                         reuse: bool = True) -> Record:
    """:func:`check_defense` returning the stored :class:`empirics.records.Record` (the CLI's entry point).

    With ``out``, the record goes to ``out/records/<key>.json`` and an ``ok`` record of the same
    configuration found there is reused (``reuse=False`` reruns).

    Parameters
    ----------
    encoder, dataset, noise, encoder_noise, weights, train_encoder, head, out, epochs, attack_epochs,
    attacks, seed, device, k_per_class, progress, opt_steps, fisher_samples, n_mc, alpha, n_train, n_test,
    max_samples, reuse
        As for :func:`check_defense`.

    Returns
    -------
    Record
        Status ``ok``; its ``result`` is the :class:`CheckDefenseResult` as plain data.
    """
    check_sigma(noise, "noise", positive=True)
    check_sigma(encoder_noise, "encoder_noise", positive=False)
    check_mc_settings(n_mc, alpha)  # before any work: the level in (0, 1), enough draws for it
    if max_samples is not None:
        expect_int(max_samples, "max_samples", minimum=MIN_SAMPLES)
    specs = _attack_specs(attacks, attack_epochs, opt_steps)
    prog = as_progress(progress)
    trains = train_encoder if train_encoder is not None else (weights is None and not isinstance(encoder, nn.Module))

    def guard(probe, enc, split, prior):
        plan = guard_check_defense(
            probe, d=int(np.prod(split.input_shape)), n_train=len(split.train), n_test=len(split.test),
            num_classes=split.num_classes, k_per_class=k_per_class, n_mc=n_mc,
            train_encoder=bool(trains) and probe["trainable"] > 0, attacks=[a.name for a in specs],
            certified=route_is_certified(enc, prior), prior_components=len(prior.weights) if prior is not None else None)
        seen.update(probe, peak=plan.peak())

    seen: dict = {}
    subject = prepare_subject(encoder, dataset=dataset, weights=weights, seed=seed, n_train=n_train, n_test=n_test,
                              max_samples=max_samples, guard=guard)
    if seen:  # after every check of the input: a refusal stays one line
        prog.step(f"encoder: {seen['k']:,} outputs per input, {seen['params']:,} parameters; estimated peak memory "
                  f"{fmt_bytes(seen['peak'])}")
    cfg = check_defense_config(subject, noise=noise, encoder_noise=encoder_noise, train_encoder=train_encoder,
                               head=head, epochs=epochs, attacks=specs, fisher_samples=fisher_samples,
                               k_per_class=k_per_class, n_mc=n_mc, alpha=alpha, n_train=n_train, n_test=n_test,
                               max_samples=max_samples, seed=seed)
    store = RecordStore(Path(out) / "records") if out is not None else None
    if store is not None and reuse:
        rec = store.get(cfg)
        if rec is not None and rec.status == "ok":
            prog.step(f"reusing record {rec.key} (this configuration was checked before)")
            return rec
    ctx = RunContext(device=device, progress=prog)
    t0 = time.perf_counter()
    res = run_check(subject, cfg, ctx)
    rec = make_record(cfg, "ok", result=res, seconds=time.perf_counter() - t0, device=device_name(device))
    if store is not None:
        store.put(rec)
    return rec


def check_defense(encoder: "str | Callable[[], nn.Module] | nn.Module", *,
                  dataset: "str | theory.GaussianMixture | DataSplit" = "digits", noise: float = 0.1,
                  encoder_noise: float = 0.0, weights: "str | Path | None" = None, train_encoder: bool | None = None,
                  head: bool = True, epochs: int = 15, attack_epochs: int = 20,
                  attacks: Sequence[str] = ("decoder", "optimization"), opt_steps: int = 200,
                  fisher_samples: int = 256, k_per_class: int = 3, n_mc: int = N_MC, alpha: float = ALPHA,
                  n_train: int = PRIOR_N_TRAIN, n_test: int = PRIOR_N_TEST, max_samples: int | None = None,
                  seed: int = 0, device: str = "auto", progress: bool = False,
                  out: "str | Path | None" = None, reuse: bool = True) -> CheckDefenseResult:
    """Check a user's encoder, as deployed, against every bound; a tested verdict.

    Parameters
    ----------
    encoder : "MODULE:FUNCTION", callable() -> nn.Module, or nn.Module
        A string is imported with :func:`empirics.usercode.load_factory` — this runs the user's
        code.  A factory's encoder is trained with a head under the noise; an ``nn.Module``
        instance is checked as given (``train_encoder=True`` trains it in place).  Lazy layers are
        materialised with one batch.  Its output on a batch of inputs (n, *input_shape) is one
        floating-point row per input, (n, ...) features.
    dataset : str, theory.GaussianMixture or DataSplit
        A registered dataset (``digits``, ``synthetic-mixture``, ``mnist1d``, ``lfw``), your own
        known prior (``n_train + n_test`` samples are drawn from it, labels = component), or your
        own data as an :class:`empirics.data.DataSplit` (identified by its content hash).
    noise : float
        σ of the Gaussian noise on the features (Theorem 2 needs σ > 0).
    encoder_noise : float
        Declared s.d. of Gaussian noise *inside* a stochastic encoder, counted as channel noise.
    weights : path, optional
        A state_dict (``torch.load(weights_only=True)``) loaded into the encoder, which is then
        checked without training it.
    train_encoder : bool, optional
        Default: train a factory's encoder, check a module instance or loaded weights as given.
    head : bool
        Train a head for the accuracy figure (needed when the encoder trains).
    epochs : int
        Training epochs of encoder and head (or of the head alone).
    attack_epochs, opt_steps : int
        Epochs of the trained attacks and gradient steps of the optimization attack, where a spec
        does not set them.
    attacks : sequence of attack specs
        ``decoder``, ``gan``, ``optimization`` (``"decoder:epochs=5"``); ``bayes`` is added by
        itself whenever the channel's posterior is known.
    fisher_samples : int
        Inputs whose Fisher information (Cramér–Rao, van Trees) is computed.
    k_per_class : int
        Mixture components per class of the H(x|z) estimate.
    n_mc : int
        Monte-Carlo draws (H(x), the departure, Fisher information); at least
        :func:`~empirics.kinds.check_defense.min_mc_draws` (alpha) — 2000 at the default level.
    alpha : float in (0, 1)
        Family-wise level of the confidence floors: each holds with probability ≥ 1 − alpha.
    n_train, n_test : int
        Samples drawn from a Gaussian-mixture ``dataset`` (ignored otherwise).
    max_samples : int, optional
        Use only the first ``max_samples`` training and held-out inputs (less memory: everything
        held per input shrinks; part of the configuration). Default: all.
    seed : int
        Master seed (training, attacks, noise draws).
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda:N``.
    progress : bool or empirics.progress.Progress
        Progress bars and one line per step on stderr.
    out : path, optional
        Record in ``out/records`` (reused by an identical configuration) and the result as
        ``out/check_defense.json``.
    reuse : bool
        Reuse an identical configuration's record in ``out`` (False: run again).

    Raises
    ------
    ValueError
        Bad input (one line each), including :class:`empirics.memory.MemoryRefused` when the check's
        estimated peak memory (from the encoder's output size and the settings) is above the available
        memory — before anything large is allocated.

    Returns
    -------
    CheckDefenseResult
        ``attacks`` (``{name, mse, mse_stderr, n, psnr?, ssim?}``), ``bounds`` (name → ``{value,
        stderr, guarantee, confidence, finite, assumptions}``; ``guarantee`` "deterministic",
        "confidence" — then ``confidence`` = 1 − alpha — or "none"), ``comparisons`` (``{attack,
        bound, guarantee, difference, stderr, z, status, ...}``), ``floors`` (the tightest
        deterministic and confidence floors), ``warnings``, ``verdict``, ``bug``, ``encoder_trained``,
        ``accuracy``, ``certifiable_mse``, ``affine`` ...; ``to_dict()`` gives them as plain data.
        The record (key, configuration, seconds) is :func:`check_defense_record`'s.
    """
    rec = check_defense_record(encoder, dataset=dataset, noise=noise, encoder_noise=encoder_noise, weights=weights,
                               train_encoder=train_encoder, head=head, out=out, epochs=epochs,
                               attack_epochs=attack_epochs, attacks=attacks, seed=seed, device=device,
                               k_per_class=k_per_class, progress=progress, opt_steps=opt_steps,
                               fisher_samples=fisher_samples, n_mc=n_mc, alpha=alpha, n_train=n_train, n_test=n_test,
                               max_samples=max_samples, reuse=reuse)
    if out is not None:
        write_json_atomic(Path(out) / "check_defense.json",
                          {**rec.result, "key": rec.key, "config": rec.config, "seconds": rec.seconds})
    return CheckDefenseResult.from_dict(rec.result)
