"""Theory: entropy limits of model inversion (CEM paper, Prop. 1, Thms 1-2) in numpy/scipy/sympy.

Ground truths (docs/ground-truths.md): the linear-Gaussian channel in closed form (:mod:`theory.gaussian`);
Gaussian-mixture priors with an exact posterior and Monte-Carlo entropies/MMSE carrying standard
errors (:mod:`theory.mixture`); Theorem 1, Theorem 2 and competing bounds (:mod:`theory.bounds`);
sympy checks of Theorem 1's proof (:mod:`theory.symbolic`, imported on demand); hypothesis
strategies for property tests (:mod:`theory.strategies`, imported on demand, needs hypothesis);
the random and fixed instances shared by tests, CLI and benchmarks (:mod:`theory.instances`).

``import theory`` imports numpy and scipy only (never torch, pysat, matplotlib or hypothesis).
Entropies are in nats unless ``base=`` is given; randomness comes from an explicit
``rng=numpy.random.Generator``.
"""

from ._validate import Estimate
from .bounds import (affine_mutual_information_upper_bounds, affine_output_fisher_trace_upper, certifiable_mse, conditional_entropy_lower_bound, cramer_rao_mse,
                     expected_fisher_information, fisher_bounds, fisher_information_linear, gmm_mutual_information_bound,
                     implied_entropy, mse_lower_bound, mutual_information_upper_bounds,
                     van_trees_mse)
from .gaussian import (gaussian_entropy, linear_gaussian_conditional_entropy,
                       linear_gaussian_mmse, linear_gaussian_mutual_information,
                       linear_gaussian_posterior_cov, linear_gaussian_posterior_mean)
from .instances import random_mixture, random_spd, small_mixture_channels
from .mixture import (ENTROPY_BOUNDS, EntropyLimit, GaussianMixture, ImportanceEstimate, MixturePosterior,
                      affine_pushforward, mixture_conditional_entropy_mc, mixture_entropy_bounds,
                      mixture_entropy_lower_limit, mixture_entropy_mc, mixture_mmse_importance_sampling, mixture_mmse_mc,
                      mixture_posterior, mixture_prior_fisher_mc)

__all__ = [
    "Estimate",
    # gaussian
    "gaussian_entropy",
    "linear_gaussian_posterior_cov",
    "linear_gaussian_posterior_mean",
    "linear_gaussian_mmse",
    "linear_gaussian_conditional_entropy",
    "linear_gaussian_mutual_information",
    # mixture
    "GaussianMixture",
    "affine_pushforward",
    "mixture_entropy_mc",
    "EntropyLimit",
    "mixture_entropy_lower_limit",
    "mixture_entropy_bounds",
    "ENTROPY_BOUNDS",
    "MixturePosterior",
    "mixture_posterior",
    "mixture_mmse_mc",
    "ImportanceEstimate",
    "mixture_mmse_importance_sampling",
    "mixture_conditional_entropy_mc",
    "mixture_prior_fisher_mc",
    # bounds
    "mse_lower_bound",
    "implied_entropy",
    "gmm_mutual_information_bound",
    "mutual_information_upper_bounds",
    "affine_mutual_information_upper_bounds",
    "affine_output_fisher_trace_upper",
    "conditional_entropy_lower_bound",
    "certifiable_mse",
    "fisher_information_linear",
    "expected_fisher_information",
    "cramer_rao_mse",
    "van_trees_mse",
    "fisher_bounds",
    # instances
    "random_spd",
    "random_mixture",
    "small_mixture_channels",
]


def __getattr__(name):  # lazy submodules: `theory.symbolic` (sympy), `theory.strategies` (hypothesis)
    if name in ("symbolic", "strategies"):
        import importlib  # deferred: sympy and hypothesis load only when these are asked for

        return importlib.import_module(f"theory.{name}")
    raise AttributeError(f"module 'theory' has no attribute {name!r}")
