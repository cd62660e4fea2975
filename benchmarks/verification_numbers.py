"""Print the verification figures that no `invlimits` section prints, for issue notes and reviews.

* exact-posterior mixture MMSE (``theory.mixture_mmse_mc``) vs brute-force self-normalised
  importance sampling (``theory.mixture_mmse_importance_sampling``), on the d = 1, 2, 3 cases of
  ``theory.small_mixture_channels`` (the cases the tests use);
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

import numpy as np

import theory
from reduction import build_network, random_e3sat


def main() -> None:
    cases = theory.small_mixture_channels()
    for case in sorted(cases):
        g, A, cn = cases[case]
        ex = theory.mixture_mmse_mc(g, A, cn, 20000, np.random.default_rng(11))
        bf = theory.mixture_mmse_importance_sampling(g, A, cn, 2000, np.random.default_rng(12), n_proposal=20000)
        print(f"mixture MMSE {case}: exact posterior {ex.value:.4f} ± {ex.stderr:.4f}, brute-force IS "
              f"{bf.value:.4f} ± {bf.stderr:.4f} (bias est. {bf.bias:.1e}), difference "
              f"{(bf.value - ex.value) / math.hypot(ex.stderr, bf.stderr):+.2f} combined s.e.")

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
        route = theory.mixture_entropy_bounds(z, which="huber_upper")["huber_upper"] - theory.gaussian_entropy(noise)
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
        b = theory.mixture_entropy_bounds(g, alphas="grid")
        est = theory.mixture_entropy_mc(g, 2000, np.random.default_rng(seed))
        z_max.append(max(b["elk_lower"] - est.value, b["chernoff_lower"] - est.value,
                         est.value - b["kl_upper"]) / est.stderr)

    sandwich()
    print(f"entropy sandwich: largest violation over {len(z_max)} mixtures {max(z_max):.2f} s.e.")


if __name__ == "__main__":
    main()
