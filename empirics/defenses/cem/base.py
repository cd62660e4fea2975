"""CEM as a defense: the machinery its two objectives share, and the registered ``"cem"`` entry.

``make_defense("cem", objective=..., ...)`` (or ``CEM(...)``, or the spec ``"cem:lam=16"``) returns
:class:`~empirics.defenses.cem.paper.PaperCEM` — the CEM paper's Algorithm 1, ``objective="paper"``
(default) — or :class:`~empirics.defenses.cem.released.ReleasedCEM` — the recipe of the authors'
released code, ``objective="code"``.  Each class takes only its own parameters; the registered
entry takes the union (so that a ``"cem:..."`` spec and a run configuration name every setting of
either objective, as they always have) and passes each implementation its own, warning about a
setting the chosen objective does not use.

What both share (:class:`CEM`): the weight λ and its off-switch (λ = 0: no feature pass, no random
numbers), Σp read from the Gaussian noise of the composed defenses (:func:`noise_variance_of`;
``min_noise_var``·I with a warning when there is none), the per-epoch feature pass over the
training set in eval mode (Alg. 1 line 4; ``feature_source="cached"`` reuses the features the
epoch's steps computed), the epoch hooks, the labels check and the checkpoint state.  What differs
(the per-epoch estimate and the per-batch term) is each subclass's.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch

from theory._validate import expect_choice, expect_number

from .._util import check_strength, data_len as _data_len, iter_batches
from ..base import Defense, EpochContext, Step

__all__ = ["CEM", "noise_variance_of"]


def noise_variance_of(defenses, d: int, *, device=None, dtype=torch.float32) -> torch.Tensor | None:
    """Per-dimension variance of the Gaussian noise added by ``defenses`` (None when none).

    A defense declares its noise through a ``noise_variance(d) -> tensor (d,)`` method
    (e.g. :class:`empirics.defenses.noise.GaussianNoise`); independent noises add up.

    Parameters
    ----------
    defenses : iterable of Defense
        The composed defenses.
    d : int
        Feature dimension.
    device, dtype : optional
        Of the result.

    Returns
    -------
    torch.Tensor, shape (d,), or None
    """
    total = None
    for df in defenses or ():
        f = getattr(df, "noise_variance", None)
        if f is None:
            continue
        v = f(d)
        if v is None:
            continue
        v = torch.as_tensor(v, dtype=dtype, device=device)
        total = v if total is None else total + v
    return total


def _flat(z):
    return z.reshape(z.shape[0], -1)



class _Dispatch(type):
    """``CEM(objective=..., ...)`` builds the implementation of that objective (its subclass)."""

    def __call__(cls, *args, **kw):
        if cls is not CEM:
            return super().__call__(*args, **kw)
        objective = kw.pop("objective", "paper")
        impl = {c.objective: c for c in CEM.__subclasses__()}
        if objective not in impl:
            raise ValueError(f"objective: expected 'paper' or 'code', got {objective!r}")
        target = impl[objective]
        own = {p.name for p in target.own_parameters()}
        defaults = {p.name: p.default for p in CEM.spec_parameters()}
        unused = sorted(k for k in kw if k not in own and kw[k] != defaults.get(k, inspect.Parameter.empty))
        if unused:
            warnings.warn(f"cem: objective={objective!r} does not use {unused} (parameters of the other "
                          "objective); they are ignored", stacklevel=2)
        return target(*args, **{k: v for k, v in kw.items() if k in own})


class CEM(Defense, metaclass=_Dispatch):
    """Conditional entropy maximization (CEM paper), pluggable into any defense.

    ``CEM(lam, objective="paper", **settings)`` returns a :class:`PaperCEM` (Algorithm 1, the
    default) or, with ``objective="code"``, a :class:`ReleasedCEM` (the released code's recipe);
    see those classes for their settings.  Settings both take:

    Parameters
    ----------
    lam : float
        λ of Eq. 8 (≥ 0; 0 switches CEM off exactly: no feature pass, no random numbers).
        Paper default 16.
    min_noise_var : float
        Σp = min_noise_var·I when no noise defense is composed (warning issued).
    feature_batch : int
        Batch size of the per-epoch feature pass.
    num_classes : int, optional
        Number of classes (default: the largest label + 1 of the first data it fits).
    feature_source : {'recompute', 'cached'}
        ``'recompute'`` (default, Alg. 1 line 4): a no-grad pass of the encoder (eval mode) over
        the training set at every epoch start.  ``'cached'``: from the second epoch on, reuse the
        encoder outputs computed during the previous epoch's training steps (each from the
        encoder as it was at that step; refit at the epoch's end) — saves the extra pass,
        departs from line 4.  When the loop gives no training set (``defend`` without
        ``data``) the features are always cached: the first epoch needs an estimate made by
        :meth:`estimate` (``objective="paper"``; ``"code"`` has no loss in epoch 1 anyway).
    """

    name = "cem"
    needs_labels = True
    objective = ""  # each implementation names its objective
    #: parameters added after run records were written: part of a configuration only when changed
    identity_defaults = {"log_entropy": True}

    def __init__(self, lam: float = 16.0, *, min_noise_var: float = 1e-4, feature_batch: int = 512,
                 num_classes: int | None = None, feature_source: str = "recompute"):
        lam = check_strength(lam, "lam")
        expect_number(min_noise_var, "min_noise_var", positive=True)
        expect_choice(feature_source, "feature_source", ("recompute", "cached"))
        self.lam = lam
        self.min_noise_var = float(min_noise_var)
        self.feature_batch = int(feature_batch)
        self.num_classes = num_classes
        self.feature_source = feature_source
        self.steps = 0  # training steps seen by extra_loss (epoch 1 of the code recipe: no fit yet)
        self._optimizer = None
        self._model = None
        self._lr = None
        self._cache: list = []  # (features, labels) of the epoch's steps, when caching
        self._fresh = False  # the estimate was made after the last epoch's steps: keep it at the next start
        self._no_data = False  # the loop gave no training set: estimates come from the cached features
        self._loaded: dict = {}  # N and dtype of a loaded estimate (to rebuild its running state)
        self.last_loss: float | None = None  # the term of the latest step (unscaled by λ)
        self.history: list[float] = []  # the term of every training step so far (kept in checkpoints)
        self._state: dict[str, Any] = {}

    # -- the registered entry's parameters ------------------------------------------------
    @classmethod
    def own_parameters(cls) -> list[inspect.Parameter]:
        """This class's constructor parameters (the shared ones included)."""
        return list(inspect.signature(cls.__init__).parameters.values())[1:]

    @classmethod
    def spec_parameters(cls) -> list[inspect.Parameter]:
        """The parameters of the registered ``"cem"`` entry: ``lam``, ``objective`` and the union of
        both objectives' settings (a setting both take has one default)."""
        out = {}
        for impl in CEM.__subclasses__():
            for p in impl.own_parameters():
                out.setdefault(p.name, p)
        obj = inspect.Parameter("objective", inspect.Parameter.KEYWORD_ONLY, default="paper")
        return [out.pop("lam"), obj, *out.values()]

    # -- interface ------------------------------------------------------------------------
    @property
    def strength(self) -> float:
        return self.lam

    def attach(self, model, optimizer, *, data=None):
        self._model = model
        self._optimizer = optimizer
        return model, optimizer

    def current_lr(self) -> float | None:
        """The attached optimizer's current (scheduled) learning rate, read at every step
        (``param_groups[0]``); ``None`` when no optimizer is attached."""
        opt = self._optimizer
        if opt is not None and getattr(opt, "param_groups", None):
            return float(opt.param_groups[0]["lr"])
        return self._lr


    # -- noise ---------------------------------------------------------------------------
    def noise_var(self, d, device, dtype) -> torch.Tensor:
        """Σp's diagonal: the composed noise defenses' variance (or the documented floor)."""
        defs = [df for df in getattr(self._model, "defenses", []) if df is not self]
        v = noise_variance_of(defs, d, device=device, dtype=dtype)
        if v is None or bool((v <= 0).any()):
            if not self._state.get("warned_noise"):
                warnings.warn(f"cem: no (positive) Gaussian noise defense composed; Σp = {self.min_noise_var}·I "
                              "is used (Thm 2 needs noise; the bound is then about this floor)", stacklevel=2)
                self._state["warned_noise"] = True
            floor = torch.full((d,), self.min_noise_var, device=device, dtype=dtype)
            v = floor if v is None else torch.maximum(v, floor)
        return v

    # -- Alg. 1 line 4-5 --------------------------------------------------------------------
    @torch.no_grad()
    def _features(self, ctx: EpochContext):
        """Noise-free features of the whole training set, encoder in eval mode (Alg. 1 line 4)."""
        model = ctx.model
        was = model.training
        model.eval()
        try:
            zs, ys = [], []
            for x, y in iter_batches(ctx.data, self.feature_batch):
                zs.append(_flat(model.encode(x.to(ctx.device))).float())
                ys.append(torch.as_tensor(y).to(ctx.device))
        finally:
            model.train(was)
        return torch.cat(zs), torch.cat(ys)

    def _caching(self) -> bool:
        """Whether the steps keep their features: ``feature_source='cached'``, or no training set
        known (then the epoch's features are the only source of the next estimate)."""
        return self.feature_source == "cached" or self._no_data

    def _take_cache(self, n=None):
        """The cached (features, labels) of the epoch — all of them when ``n`` is None, else only
        if they cover exactly ``n`` examples — and empty the cache; ``None`` if not usable."""
        cache, self._cache = self._cache, []
        if not cache or (n is not None and sum(t[0].shape[0] for t in cache) != n):
            return None
        return torch.cat([t[0] for t in cache]).float(), torch.cat([t[1] for t in cache])

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Make the estimate this epoch's steps use: kept if :meth:`on_epoch_end` (or
        :meth:`estimate`) just made it; else from the previous epoch's cached features
        (``feature_source='cached'``, or no training set known) or an encoder pass over the
        training set (Alg. 1 line 4).  Without a training set and before any features were
        cached there is nothing to fit (the first loss then says so)."""
        if self.lam == 0:
            return
        if self._model is None:
            self._model = ctx.model
        self._no_data = ctx.data is None
        if self._first_epoch_without_loss() and self._estimate_tensor() is None and self.steps == 0:
            # released recipe: no CEM loss in epoch 1; the first k-means runs after it, on the
            # encoder as epoch 1 left it (at its end from the cached features, or here at the
            # start of epoch 2 from a pass over the training set)
            self._state["code_epoch1"] = True
            return
        if self._fresh:
            self._fresh = False
            self._restore_running()
            return
        n = None if self._no_data else _data_len(ctx.data)
        got = self._take_cache(n) if self._caching() else None
        if got is None:
            self._cache = []
            if self._no_data:
                return
            got = self._features(ctx)
        self._estimate(*got)

    def on_epoch_end(self, ctx: EpochContext) -> None:
        """Refit on the features the epoch's steps computed, when they are cached (the encoder as
        each step saw it; ``feature_source='cached'`` or no training set): the next epoch uses
        this fit.  With ``feature_source='recompute'`` and a training set nothing happens here:
        the pass runs at the next epoch's first step (same encoder; a last epoch costs no pass)."""
        if self.lam == 0:
            return
        self._no_data = ctx.data is None
        if not self._caching():
            return
        got = self._take_cache(None if self._no_data else _data_len(ctx.data))
        if got is not None:
            self._estimate(*got)
            self._fresh = True

    def estimate(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Per-epoch mixture estimate (Alg. 1 line 5) from features ``z (N, d)`` and labels; the
        next epoch start keeps it (it does not refit)."""
        self._estimate(z, y)
        self._fresh = True

    def _estimate(self, z: torch.Tensor, y: torch.Tensor) -> None:
        z = _flat(z)
        N, d = z.shape
        nc = self.num_classes or int(y.max()) + 1
        self.num_classes = nc
        sd = self.noise_var(d, z.device, z.dtype).sqrt()
        self._state["noise_sd"] = sd
        self._state["N"] = N
        self._state["dtype"] = z.dtype
        self._fit(z, y, sd)

    def _restore_running(self):
        """After :meth:`load_state_dict` of an estimate made at an epoch's end: rebuild the running
        estimate (and Σp) exactly as the refit left them (nothing changed them since)."""
        st = self._state
        where = self._estimate_tensor()
        if "noise_sd" in st or where is None or self._loaded.get("N") is None:
            return
        d = where.shape[-1]
        dtype = getattr(torch, self._loaded.get("dtype", "float32"))
        sd = self.noise_var(d, where.device, dtype).sqrt()
        st["noise_sd"] = sd
        st["N"] = int(self._loaded["N"])
        st["dtype"] = dtype
        self._restore(sd, dtype)

    # -- the per-step term ----------------------------------------------------------------
    def extra_loss(self, step: Step):
        if self.lam == 0:
            return None
        if step.y is None:
            raise ValueError("cem: needs the labels of the batch (its mixture is per class): pass them, "
                             "defended.loss(y)")
        if self._estimate_tensor() is None and self._state.get("code_epoch1"):
            # epoch 1 of the released recipe: no clusters yet, no CEM loss
            if self._caching():
                self._cache.append((_flat(step.z).detach(), step.y.detach()))
            self.steps += 1
            return None
        if self._estimate_tensor() is None:
            raise ValueError("cem: no mixture estimate yet: Alg. 1 fits it on the features of the training set "
                             "before the first step — pass data=<your training set> (tensors (x, y), a Dataset or "
                             "a DataLoader) to defend(), or fit one with cem.estimate(z, y)")
        if "noise_sd" not in self._state:
            self._restore_running()
        if self._caching():
            self._cache.append((_flat(step.z).detach(), step.y.detach()))
        self.steps += 1
        lam, loss = self._term(step.z, step.y)
        if not bool(torch.isfinite(loss)):
            raise ValueError("cem: the conditional-entropy loss L_C is nan/inf (features diverged); "
                             "lower lam or the learning rate")
        self.last_loss = float(loss.detach())
        self.history.append(self.last_loss)
        return lam * loss

    # -- what each objective defines -------------------------------------------------------
    def _first_epoch_without_loss(self) -> bool:
        """True when epoch 1 has no CEM loss (the released recipe: no clusters before it)."""
        return False

    def _estimate_tensor(self):
        """A tensor of the current estimate (its last axis = the feature dimension), or None."""
        raise NotImplementedError

    def _fit(self, z: torch.Tensor, y: torch.Tensor, sd: torch.Tensor) -> None:
        """The per-epoch estimate from noise-free features ``z (N, d)``, labels and the noise s.d."""
        raise NotImplementedError

    def _restore(self, sd: torch.Tensor, dtype) -> None:
        """Rebuild the running state of a loaded estimate."""

    def _term(self, z: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(effective weight, unscaled term) of one batch."""
        raise NotImplementedError

    # -- checkpointing ----------------------------------------------------------------------
    def _estimate_state(self) -> dict:
        return {"fit": None, "kmeans": None}

    def _load_estimate(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        st = self._state
        return {**self._estimate_state(), "steps": int(self.steps), "num_classes": self.num_classes,
                "history": list(self.history), "fresh": bool(self._fresh), "N": st.get("N"),
                "dtype": str(st["dtype"]).replace("torch.", "") if "dtype" in st else None,
                "code_epoch1": bool(st.get("code_epoch1", False))}

    def load_state_dict(self, state: dict) -> None:
        self._load_estimate(state)
        self.num_classes = state.get("num_classes")
        self.history = [float(v) for v in state.get("history", [])]
        self.steps = int(state.get("steps", len(self.history)))
        # an estimate made at an epoch's end is used as is by the next epoch (running state rebuilt)
        self._fresh = bool(state.get("fresh", False)) and state.get("N") is not None
        self._state = {"code_epoch1": True} if state.get("code_epoch1") else {}
        self._loaded = {"N": state.get("N"), "dtype": state.get("dtype") or "float32"}
        self._cache = []
