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
corrected mathematics; the other items are documented choices and measurements.

**Hardness reduction (MixCon appendix, Thm B.10–B.11).**

1. *Clause bias.* The printed bias −2 is right only for exactly three literals: an unsatisfied
   2-literal clause outputs 0 and a 4-literal one outputs 2. We use −(k−1) (exact for k = 1..4,
   repeated literals and tautologies); `bias="paper"` reproduces −2 so the failure can be shown.
2. *Soundness proof.* "x_i = 0" should read "x_i = 1"; T = m + 128B²n should be m + 100B²n;
   1/(36B²) should be 1/(3600B²) and 1/(5√B) should be 5/√B; "n ≤ 3m" is false when a variable
   occurs in no clause (use n_used ≤ 3m). What holds per instance, and is checked against RC2 and
   every attack: ‖h(x)−z‖² ≥ |U(sign x)|·(1 − 3/(100B)) ≥ |U| − n_used/100 (max over Δ of
   2BΔ − 100B²Δ² = 1/100 exactly). The printed margin chain is positive only for B > 1.84·10⁵;
   with the sharper inequality, for B > 1.44·10⁴ (exact thresholds by sympy).
3. *Constants.* B ≥ 15000 with 100B² copies per variable is 2.25·10¹⁰ copies (the project's
   design notes print 2.25·10⁸, which is B²): never buildable. `copies` is a parameter and the
   compact form (one copy pair weighted √copies) has the identical residual.
4. *Lipschitz step.* ‖W₁‖ ≤ √(200B²+3B) ≤ 15B and ‖W₂‖ = √2 exactly (the proof prints ‖W⁽²⁾‖ ≤ 2
   and bounds W⁽¹⁾ under that name); the printed product 30B is about 3× the exact one.

**Entropy limit (CEM paper, Thms 1–2 and supplementary S.1–S.2).**

5. *Theorem 2 is Huber's bound.* Its sum equals the Huber upper bound on H(z) minus H(ε) (checked
   symbolically and to 1e-10 numerically). The Kolchinsky–Tracey (KL) bound is never looser and
   the max-entropy (Gaussian, Cov z) bound wins when components overlap; all three are offered.
6. *Rigour.* Theorem 2 is a certificate only when ẑ *is* a Gaussian mixture (e.g. an affine
   encoder on mixture data) and H(x) is known or lower-bounded. On fitted mixtures and real data
   every Theorem 2 number is an *estimate* and is labelled `rigorous = no`.
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

**CEM, Algorithm 1 (CEM paper, Eq. 5–8).**

10. *Released code vs paper.* The code computes no mixture and no log-determinant (per-class
    k-means, one scalar variance per cluster inside log(v + 0.01), a ReLU floor at 0.125σ², λ
    rescaled by 0.001/lr). We implement Eq. 3/7 (`objective="paper"`) and offer the recipe
    separately (`objective="code"`), never mixed.
11. *Choices the paper leaves open.* Eq. 7's sum index reads i = j where j = 1 is meant; Eq. 6 uses
    the weight π already updated by Eq. 5; the mixture models the noise-free ẑ (fitting the noisy
    z and subtracting Σp can leave an indefinite matrix); ΔΣ is taken about the component mean
    (about the batch mean it is singular for the typical 4 points per component per batch).
12. *No noise, no bound.* Without feature noise L_C (and I(z; ẑ)) is infinite; CEM then uses
    Σp = `min_noise_var`·I and warns.
13. *λ scale.* The paper's λ = 16 belongs to the released code's loss scale; with the paper's
    Eq. 7 (a sum of log-determinants) it dominates the task loss: on digits (σ = 0.1, 5 epochs)
    λ = 16 leaves the accuracy at chance (8.7 %). Our digits experiments use λ = 0.01–0.05;
    `--preset paper` keeps λ = 16 as the paper states it.
14. *Overhead.* The per-step log-determinants are kept in a low-rank form (Eq. 6's change has rank
    ≤ n_j) and the per-epoch mixture is warm-started EM; `invlimits bench` measures the whole
    epoch cost against the naive route (fresh Cholesky of every covariance every step, EM from
    scratch).

**Attacks and metrics.**

15. *Truncation attack (Yang et al., Eq. 12).* log 0 of truncated entries is undefined; we impute
    (smallest kept log-probability − 1) per vector.
16. *SSIM* follows Wang et al. 2004 (11×11 Gaussian window, σ = 1.5); images smaller than 11 pixels
    (8×8 digits) are not border-cropped.
17. *Attack optimality check.* "No attack below the MMSE" is checked against the error of the exact
    posterior mean on the same test pairs, with the standard error of the paired difference (far
    tighter than the Monte-Carlo s.e. of the MMSE itself); both numbers are in the table.
"""


def errata_markdown() -> str:
    """The errata as Markdown (a level-2 heading and numbered items)."""
    return ERRATA_MD.rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(errata_markdown())
