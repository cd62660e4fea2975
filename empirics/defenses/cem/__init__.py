"""Conditional entropy maximization (CEM; Xia et al., CVPR 2025), one concern per module.

* :mod:`.objective` — L_C, CEM paper Eq. 7 (= the sum subtracted in Theorem 2, Eq. 3), in torch;
* :mod:`.mixture` — the per-class Gaussian-mixture fit (EM) of Algorithm 1 line 5;
* :mod:`.kmeans` — the per-class k-means of the released code;
* :mod:`.base` — what both objectives share as a defense, and the registered ``"cem"`` entry
  :class:`CEM` (``objective="paper"`` → :class:`PaperCEM`, ``"code"`` → :class:`ReleasedCEM`);
* :mod:`.paper` — :class:`PaperCEM`, Algorithm 1 (Eq. 5–8) and its stated departures;
* :mod:`.released` — :class:`ReleasedCEM`, the recipe of the authors' released code
  (github.com/xiasong0501/CEM, commit 5ddd1fd), with both branches of its entropy term.
"""

from .base import CEM, noise_variance_of
from .kmeans import KMeansFit, fit_class_kmeans
from .mixture import GaussianMixtureFit, fit_class_mixture
from .objective import cem_objective
from .paper import PaperCEM
from .released import ReleasedCEM, code_lambda, code_objective

__all__ = ["CEM", "PaperCEM", "ReleasedCEM", "cem_objective", "GaussianMixtureFit", "fit_class_mixture", "KMeansFit",
           "fit_class_kmeans", "code_objective", "code_lambda", "noise_variance_of"]
