"""Print the verification figures that no `invlimits` section prints, for issue notes and reviews.

* exact-posterior mixture MMSE (``theory.mixture_mmse_mc``) vs brute-force self-normalised
  importance sampling, on the d = 1, 2, 3 cases of ``tests/theory/test_theory_mixture.py``;
* Theorem 2 typed in as printed (CEM Eq. 3) vs the Huber upper bound on H(z) minus H(ε), over
  2000 random instances;
* faithful vs compact reduction networks: residuals on random x, B = 2..4;
* the entropy-bound sandwich elk, chernoff ≤ H ≤ kl against Monte Carlo: the largest violation in
  standard errors over 4000 mixtures from ``theory.strategies.gaussian_mixtures`` (the test
  allows 4).

Run from the repository root: ``python benchmarks/verification_numbers.py`` (about 30 s).
The tests assert the same properties; this script prints the measured values.
"""

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "theory"))

import theory  # noqa: E402
from reduction import build_network, random_e3sat  # noqa: E402
from test_theory_mixture import CASES, _brute_force_mmse  # noqa: E402


def main() -> None:
    for case in sorted(CASES):
        g, A, cn = CASES[case]
        A, cn = np.asarray(A, float), np.asarray(cn, float)
        ex = theory.mixture_mmse_mc(g, A, cn, 20000, np.random.default_rng(11))
        bf, se, _ = _brute_force_mmse(g, A, cn, 2000, 20000, np.random.default_rng(12))
        print(f"mixture MMSE {case}: exact posterior {ex.value:.4f} ± {ex.stderr:.4f}, brute-force IS "
              f"{bf:.4f} ± {se:.4f}, difference {(bf - ex.value) / math.hypot(ex.stderr, se):+.2f} combined s.e.")

    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(2000):
        k, d = int(rng.integers(1, 6)), int(rng.integers(1, 8))
        w = rng.dirichlet(np.ones(k))
        a = rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) / d
        b = rng.normal(size=(d, d))
        noise = b @ b.T / d + 0.1 * np.eye(d)
        printed = theory.gmm_mutual_information_bound(w, covs, noise)
        z = theory.GaussianMixture(w, rng.normal(size=(k, d)), covs + noise)
        route = theory.mixture_entropy_bounds(z)["huber_upper"] - theory.gaussian_entropy(noise)
        worst = max(worst, abs(printed - route))
    print(f"Thm 2 as printed vs Huber route: max |difference| over 2000 instances {worst:.2e}")

    worst = 0.0
    for B in (2, 3, 4):
        for seed in range(3):
            r = np.random.default_rng(seed)
            f = random_e3sat(12, 12 * B // 3, B, r)
            x = r.uniform(-1, 1, (50, 12))
            rf = build_network(f, B=B, form="faithful").residual(x)
            rc = build_network(f, B=B, form="compact").residual(x)
            worst = max(worst, float(np.max(np.abs(rf - rc) / np.abs(rc))))
    print(f"faithful vs compact residual, B = 2..4: max relative difference {worst:.2e}")

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from theory.strategies import gaussian_mixtures

    z_max = []

    @settings(max_examples=4000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(gaussian_mixtures(dim=st.integers(1, 3), n_components=st.integers(1, 4)), st.integers(0, 2**32 - 1))
    def sandwich(g, seed):
        b = theory.mixture_entropy_bounds(g)
        est = theory.mixture_entropy_mc(g, 2000, np.random.default_rng(seed))
        z_max.append(max(b["elk_lower"] - est.value, b["chernoff_lower"] - est.value,
                         est.value - b["kl_upper"]) / est.stderr)

    sandwich()
    print(f"entropy sandwich: largest violation over {len(z_max)} mixtures {max(z_max):.2f} s.e.")


if __name__ == "__main__":
    main()
