"""The one source of the errata and departures from the papers.

Rendered into every ``report.md`` (:func:`errata_markdown`) and into the README between the
markers ``<!-- errata:begin -->`` and ``<!-- errata:end -->`` (a test keeps the two identical;
``python -m empirics.errata`` prints the block).  Module docstrings refer to items by number.
Where a claim is false as printed, a test holds the counterexample and the package implements
the corrected mathematics; the other items are documented choices and measurements.
"""

from __future__ import annotations

__all__ = ["ERRATA_MD", "errata_markdown", "README_BEGIN", "README_END"]

README_BEGIN = "<!-- errata:begin (generated from empirics/errata.py; edit there) -->"
README_END = "<!-- errata:end -->"

ERRATA_MD = """\
## Errata and departures from the papers

Where a claim is false as printed, a test holds the counterexample and the package implements the
corrected mathematics; the other items are documented choices, generalisations and measurements.
This list has one source, `empirics/errata.py`; the README and every `report.md` render it.

**Hardness reduction (MixCon appendix, Thm B.10–B.11).**

1. *Clause bias (a generalisation, not an erratum).* Thm B.10 reduces from MAX-E3SAT — exactly
   three literals per clause — where the printed bias −2 is right. For other clause lengths
   (general DIMACS input such as pigeonhole formulas) a clause neuron is 1 on an all-false clause
   and 0 otherwise iff b = −(k−1); with −2 an unsatisfied 2-literal clause outputs 0 and a
   4-literal one 2. We use −(k−1) (equal to −2 on E3 input; exact for k = 1..4, repeated literals
   and tautologies); `bias="paper"` applies −2 to every clause so the difference can be shown.
2. *Soundness proof.* "x_i = 0" should read "x_i = 1"; T = m + 128B²n should be m + 100B²n;
   1/(36B²) should be 1/(3600B²) and 1/(5√B) should be 5/√B. The ε-tolerance term counts every
   input variable (≈ n/36), so "n ≤ 3m" needs the variables that occur in no clause dropped from
   the network: `build_network` drops them (assignments are still read in the file's numbering).
   Counterexample held by a test: 1 clause + 97 unused variables, where the all-false assignment
   passes the ε-test with 0 % of the clauses satisfied. What holds per instance:
   ‖h(x)−z‖² ≥ |U(sign x)|·(1 − 3/(100B)) ≥ |U| − n_used/100 (max over Δ of 2BΔ − 100B²Δ² = 1/100
   exactly). The printed margin chain is positive only for B > 1.84·10⁵; with the sharper
   inequality, for B > 1.44·10⁴ (exact thresholds by sympy). Since that inequality is proved and
   RC2 is exact, "rounding an attack never beats the MaxSAT optimum" can fail only through a coding
   bug: it is kept as a regression check, not as evidence.
3. *Constants.* B ≥ 15000 with 100B² copies per variable is 2.25·10¹⁰ copies: never buildable. `copies` is a parameter and
   the compact form (one copy pair weighted √copies) has the identical residual.
4. *Lipschitz step.* ‖W₁‖ ≤ √(200B²+3B) ≤ 15B and ‖W₂‖ = √2 exactly (the proof prints ‖W⁽²⁾‖ ≤ 2
   and bounds W⁽¹⁾ under that name); the printed product 30B is about 3× the exact one.

**Entropy limit (CEM paper, Thms 1–2 and supplementary S.1–S.2).**

5. *Theorem 2 is Huber's bound.* Its sum equals the Huber upper bound on H(z) minus H(ε) (checked
   symbolically and to 1e-10 numerically). The Kolchinsky–Tracey (KL) bound is never looser and
   the max-entropy (Gaussian, Cov z) bound wins when components overlap; all three are offered.
6. *Rigour.* Theorem 2 is a certificate only when ẑ *is* a Gaussian mixture (e.g. an affine
   encoder on mixture data, analysed exactly as deployed) and H(x) is known or lower-bounded — by
   a proved bound, not a Monte-Carlo point estimate: with H(x) estimated from `--n-mc 2` draws the
   old "rigorous" floor was 1.88× the exact MMSE. Each floor now carries `guarantee`:
   `deterministic` (H(x) by its ELK / Chernoff-α lower bound, the deployed float32 encoder's
   departure by a rounding-error analysis: Linear encoders only), `confidence` with its level 1 − α
   (H(x) by a lower confidence limit that needs no CLT; the departure of other encoders by its CLT
   limit, with a minimum number of draws), or `none` (fitted mixtures and real data: every Theorem 2
   number there is an *estimate*).
7. *What can be certified.* For data in [0,1]^d, H(x) ≤ 0, so Theorems 1+2 never certify a
   per-dimension MSE above 1/(2πe) ≈ 0.0585 (`theory.certifiable_mse`, reported by `check-defense`).
8. *Proof typos (harmless).* Eq. 13 / S5 writes log(2πe·ε) where ξ is meant; the step called
   "Jensen" in Eq. 11 / S3 is AM–GM on the eigenvalues; Eqs. 14–15 / S6–S7 write (2πe)^d with the
   input dimension where the dimension of z is meant (the factors cancel in Eq. 16). Theorem 1
   states no equality case: it is tight iff x|z is Gaussian with isotropic covariance whose trace
   does not depend on z.
9. *Nonparametric entropy estimators* (Kozachenko–Leonenko, KSG) are biased in d ≥ 5, so the
   package does not use them: every entropy is a closed form, a mixture bound or a Monte-Carlo
   estimate of a known density, with its standard error.

**CEM, Algorithm 1 (CEM paper, Eq. 5–8), and its released code.**

10. *Released code vs paper.* The released code (github.com/xiasong0501/CEM, commit 5ddd1fd) was
    read in the trainer its scripts run, `model_training_paral_pruning.MIA_train` (built by
    `main_MIA.py` and `main_test_MIA.py`), not `model_training.py`. Its loss computes no Gaussian
    mixture and no log-determinant. Per class it runs k-means on the noise-free features (5
    clusters for its sigmoid-bottleneck architectures as in `run_exp.sh`, 15 otherwise;
    warm-started; at most 50 iterations), refitted at the end of each epoch for the next, so epoch
    1 has no CEM loss. Each cluster has one scalar variance: the batch variance blended with the
    epoch's cluster variance with weight 10·n_b/(w·N/C), set to 0.99 once that reaches 1. The term
    is w·ReLU(log(v + 0.01) − log(t·σ² + 0.01)) with t = `var_threshold` (0.1 by default, 0.125 in
    `run_exp.sh`) and w = n_j/N_class from the epoch's k-means, summed over the clusters and classes
    present and divided by the number of classes present. That is the trainer's `log_entropy=1`
    branch, which `run_exp.sh` passes; the trainer's own default, `log_entropy=0`, uses w·(v + 0.001)
    instead (no logarithm, threshold or γ). `objective="code"` offers both: `log_entropy=True`
    (default, the run script's) and `log_entropy=False`. The encoder gradient is scaled by
    λ·0.001/lr with the current scheduled lr (plain λ once lr < 0.00041). It reads each class's
    weights and epoch variances through a class counter over the rows of the label-sorted batch,
    so they usually come from the batch's lowest class (a bug). Its "mutual information" printout,
    (1/D)·log|Σ_j + σ²I|, is logged only. We implement Eq. 3/7 (`objective="paper"`) and that
    recipe separately (`objective="code"`, the bug behind `released_indexing=True`), never mixed.
11. *Departures from Algorithm 1, and choices it leaves open.* `objective="paper"` departs from
    Algorithm 1 in three ways: (a) it fits the mixture to the noise-free ẑ, whereas lines 4–5 fit
    the noisy z (fitting z and subtracting Σp can leave an indefinite matrix); (b) it assigns a
    point to the nearest mean among its own class's components, whereas line 9 assigns to the
    nearest of all k (the released code restricts assignment the same way); (c) it replaces line
    5's per-epoch GMM fit by one EM iteration warm-started from the previous epoch's fit (25 from
    scratch in the first epoch), so the estimate is not a converged fit. Choices the paper leaves
    open: Eq. 7's sum index reads i = j where j = 1 is meant; Eq. 6 uses the weight π already
    updated by Eq. 5 (tested against an independent recursion); ΔΣ is taken about the component
    mean (about the batch mean it is singular for the typical 4 points per component per batch).
12. *No noise, no bound.* Without feature noise L_C (and I(z; ẑ)) is infinite; CEM then uses
    Σp = `min_noise_var`·I and warns.
13. *λ scale.* The paper's λ = 16 belongs to the released code's loss scale; with the paper's
    Eq. 7 (a sum of log-determinants) it dominates the task loss: on digits (σ = 0.1) λ = 16 leaves
    the accuracy at chance, and so do λ = 0.05 in 10 epochs and λ = 0.01 in 4 epochs for most seeds
    (measured). Our digits runs use λ = 0.002–0.01 and flag any model near chance as failed;
    `--preset paper` keeps λ = 16 as the paper states it.
14. *Overhead.* The per-step log-determinants are kept in a low-rank form (Eq. 6's change has rank
    ≤ n_j) and the per-epoch mixture is warm-started EM; `invlimits bench` measures the whole
    epoch cost against the naive route (fresh Cholesky of every covariance every step, EM from
    scratch).

**Attacks, metrics and statistics.**

15. *Truncation attack (Yang et al., Eq. 12).* log 0 of truncated entries is undefined; we impute
    (smallest kept log-probability − 1) per vector.
16. *SSIM* follows Wang et al. 2004 (11×11 Gaussian window, σ = 1.5); images smaller than 11 pixels
    (8×8 digits) are not border-cropped.
17. *Comparisons are tests.* "No attack below the MMSE" is tested against the error of the exact
    posterior mean on the same test pairs, with the standard error of the paired difference; every
    other measured-vs-bound comparison is a one-sided test with the standard errors of both sides
    at a stated family-wise level (0.1 % for the package's verdicts), never a bare comparison of
    means. A mean a fraction of a standard error below a bound is "inconclusive", not a violation.
"""


def errata_markdown() -> str:
    """The errata as Markdown (a level-2 heading and numbered items).

    Returns
    -------
    str
    """
    return ERRATA_MD.rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(errata_markdown())
