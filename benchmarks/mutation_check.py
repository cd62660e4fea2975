"""Mutation check: deliberate one-line bugs in core formulas must each make a default test fail.

Each mutation below replaces one exact piece of source (it must occur exactly once — a default
test, ``tests/test_mutation_specs.py``, keeps the list in step with the code) and runs the default
tests of *its own package* (``-m "not slow and not gpu"``, stopping at the first failure) in a
private copy of the repository, so the working tree is never touched.  The table says which test
caught each mutation; a mutation that no test catches is a ``SURVIVED`` row and the script exits 1.

Run from the repository root: ``python benchmarks/mutation_check.py [--only ID ...] [--list]``
(several minutes on 2 cores: each mutation runs until its first failing test).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

THEORY = ["tests/theory", "theory"]
CEM = ["tests/empirics/test_defenses_cem.py", "tests/empirics/test_defenses_cem_code.py", "empirics/defenses/cem"]
REDUCTION = ["tests/reduction", "reduction"]
#: check-defense's certificate pipeline: its own tests (the fast ones first) and its modules' doctests
CERT = ["tests/empirics/test_check_guarantees.py", "tests/empirics/test_check_affine.py",
        "tests/empirics/test_check_certificates.py", "tests/empirics/test_check_encoders.py",
        "tests/empirics/test_defenses_check.py", "tests/empirics/test_check_fuzz.py", "empirics/experiments/affine.py",
        "empirics/experiments/check_bounds.py", "empirics/experiments/check_verdict.py",
        "empirics/kinds/check_defense.py"]
EXACT = ["tests/reduction/test_reduction_exact.py", "tests/reduction/test_reduction_phase.py", "reduction/exact.py",
         "reduction/phase.py"]


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str
    file: str
    old: str
    new: str
    tests: tuple


MUTATIONS = (
    Mutation("kl-offdiag-inf", "every off-diagonal KL set to +inf (kl_upper silently equals Huber)",
             "theory/_pairwise.py", "    np.fill_diagonal(kl, 0.0)\n    return np.maximum(kl, 0.0)",
             "    np.fill_diagonal(kl, 0.0)\n    kl = np.where(np.eye(kl.shape[0], dtype=bool), kl, np.inf)\n"
             "    return np.maximum(kl, 0.0)", tuple(THEORY)),
    Mutation("huber-weight-term", "Thm 2 / Huber without the −log wᵢ term",
             "theory/bounds.py", "out[\"huber\"] = float(np.sum(wp * (-np.log(wp) + 0.5 * (logdets[mask] - ld_p))))",
             "out[\"huber\"] = float(np.sum(wp * (0.5 * (logdets[mask] - ld_p))))", tuple(THEORY)),
    Mutation("huber-entropy-weight", "Huber entropy upper bound without the −log wᵢ term",
             "theory/_pairwise.py", "return float(np.sum(weights * (-np.log(weights) + comp_h)))",
             "return float(np.sum(weights * comp_h))", tuple(THEORY)),
    Mutation("elk-kernel", "ELK kernel N(μᵢ; μⱼ, S) with S = (Σᵢ+Σⱼ)/2 instead of Σᵢ+Σⱼ",
             "theory/_pairwise.py", "logdet_S[k] + 0.5 * maha_S[k])",
             "logdet_S[k] - d * math.log(2.0) + maha_S[k])", tuple(THEORY)),
    Mutation("chernoff-exponent", "Chernoff divergence with α instead of α(1−α) on the Mahalanobis term",
             "theory/_pairwise.py", "val = (0.5 * b * (1 - b) * maha_S[k]", "val = (0.5 * b * maha_S[k]",
             tuple(THEORY)),
    Mutation("thm1-exponent", "Theorem 1 with exp(H/d) instead of exp(2H/d)",
             "theory/bounds.py", "t = 2.0 * h_nats / d - LOG_2PI_E", "t = h_nats / d - LOG_2PI_E", tuple(THEORY)),
    Mutation("posterior-covariance", "mixture posterior covariance without the channel information (s = 0)",
             "theory/mixture.py", "F = LV / np.sqrt(1.0 + s2)[None, :]", "F = LV / np.sqrt(1.0 + 0.0 * s2)[None, :]",
             tuple(THEORY)),
    Mutation("posterior-responsibilities", "posterior component weights w_i(z) from a marginal of z without the noise",
             "theory/mixture.py", "q = np.sum(c * c / (1.0 + self._s[i, :r] ** 2)[None, :], axis=1)",
             "q = np.sum(c * c / (1e-3 + self._s[i, :r] ** 2)[None, :], axis=1)", tuple(THEORY)),
    Mutation("stable-marginal-null", "stable posterior weights without the null-space part of the residual (k > d)",
             "theory/mixture.py", "q = q + np.einsum(\"nk,nk->n\", res, res)",
             "q = q + 0.0 * np.einsum(\"nk,nk->n\", res, res)", tuple(THEORY)),
    Mutation("hx-stderr-ddof", "H(x)'s Monte-Carlo standard error with ddof = 0",
             "theory/mixture.py", "    v = -g.logpdf(x) / log_base(base)\n    return Estimate(float(v.mean()), "
             "float(v.std(ddof=1) / math.sqrt(n)), n)", "    v = -g.logpdf(x) / log_base(base)\n    return "
             "Estimate(float(v.mean()), float(v.std(ddof=0) / math.sqrt(n)), n)", tuple(THEORY)),
    Mutation("hx-limit-width", "H(x)'s lower confidence limit without the 2 of Maurer's exponent",
             "theory/mixture.py", "lim = mean - math.sqrt(2.0 * V * math.log(1.0 / alpha) / n)",
             "lim = mean - math.sqrt(V * math.log(1.0 / alpha) / n)", tuple(THEORY)),
    Mutation("hx-second-moment", "the proved second moment with E(Q/2)² = d²/4 (the χ² variance dropped)",
             "theory/mixture.py", "V = float(np.sum(w * (a * a + a * d + d * (d + 2) / 4.0)))",
             "V = float(np.sum(w * (a * a + a * d + d * d / 4.0)))", tuple(THEORY)),
    Mutation("fisher-convexity", "Tr J(z) bound without the k − r directions the channel does not reach",
             "theory/bounds.py", "(k - r) + np.sum(1.0 / (1.0 + sv * sv), axis=1)",
             "np.sum(1.0 / (1.0 + sv * sv), axis=1)", tuple(THEORY)),
    Mutation("mixture-responsibilities", "mixture responsibilities p(i|x) without the prior weights",
             "theory/mixture.py", "        lj = self.component_logpdf(x) + self._logw[None, :]\n        return np.exp(",
             "        lj = self.component_logpdf(x)\n        return np.exp(", tuple(THEORY)),
    Mutation("van-trees-prior", "van Trees without the prior Fisher information",
             "theory/bounds.py", "return _ratio(d, float(np.trace(F)) + tj)", "return _ratio(d, float(np.trace(F)))",
             tuple(THEORY)),
    Mutation("gaussian-entropy", "Gaussian entropy without the ½",
             "theory/gaussian.py", "return float(0.5 * (d * LOG_2PI_E + logdet_chol(L)) / log_base(base))",
             "return float((d * LOG_2PI_E + logdet_chol(L)) / log_base(base))", tuple(THEORY)),
    Mutation("departure-point-estimate", "the departure η² of a confidence floor by its point estimate, not its "
             "upper limit", "empirics/experiments/check_bounds.py",
             "eta2_conf = departure[\"eta2\"] + float(norm.isf(a_each)) * departure[\"eta2_stderr\"]",
             "eta2_conf = departure[\"eta2\"]", tuple(CERT)),
    Mutation("departure-price", "the lemma's departure price without η√Tr J",
             "empirics/experiments/affine.py", "return math.sqrt(eta2_upper * trace_fisher_upper) + 0.5 * eta2_upper",
             "return 0.5 * eta2_upper", tuple(CERT)),
    Mutation("rounding-input-term", "the deterministic departure bound without the input's rounding u|A||x|",
             "empirics/experiments/affine.py", "H = (1 + U32) * Gt + U32 * absA", "H = (1 + U32) * Gt", tuple(CERT)),
    Mutation("hx-point-as-floor", "a confidence floor's H(x) by its Monte-Carlo mean (a point estimate as a floor)",
             "empirics/experiments/check_bounds.py",
             "hx_conf = hx_limit.mean - math.sqrt(2.0 * hx_limit.second_moment * math.log(1.0 / a_each) / hx_limit.n)",
             "hx_conf = hx_limit.mean", tuple(CERT)),
    Mutation("deterministic-hx-mc", "the deterministic floor's H(x) from the Monte-Carlo draws",
             "empirics/experiments/check_analysis.py", "hx_det = deterministic_entropy_lower(prior)",
             "hx_det = hx_lim.mean", tuple(CERT)),
    Mutation("confidence-level", "confidence limits at 10× the stated level α",
             "empirics/experiments/check_bounds.py", "a_each = alpha / n_random", "a_each = 10 * alpha / n_random",
             tuple(CERT)),
    Mutation("family-wise", "no Bonferroni split of α over the Monte-Carlo quantities",
             "empirics/experiments/check_bounds.py", "n_random = 1 if eta2_det is not None else 2",
             "n_random = 1", tuple(CERT)),
    Mutation("fitted-floor-stderr", "an estimated floor's s.e. with the wrong delta-method factor (1 instead of 2)",
             "empirics/experiments/check_bounds.py", "stderr=2 * val / d * h_stderr if math.isfinite(val) else 0.0)",
             "stderr=val / d * h_stderr if math.isfinite(val) else 0.0)", tuple(CERT)),
    Mutation("guarantee-label", "a fitted-mixture floor labelled deterministic",
             "empirics/experiments/check_bounds.py", "out[f\"thm1+thm2_{m}\"] = Bound(val, \"none\", (",
             "out[f\"thm1+thm2_{m}\"] = Bound(val, \"deterministic\", (", tuple(CERT)),
    Mutation("affine-rtol", "a 10⁴× looser affine-confirmation tolerance",
             "empirics/experiments/affine.py", "AFFINE_RTOL = 1e-6", "AFFINE_RTOL = 1e-2", tuple(CERT)),
    Mutation("eq6-old-weight", "CEM Eq. 6 with the weight before Eq. 5's update",
             "empirics/defenses/cem/paper.py", "alpha = float(counts[j] / (pi_new[j] * N))",
             "alpha = float(counts[j] / (st[\"pi\"][j] * N))", tuple(CEM)),
    Mutation("cem-logdet", "CEM running log-determinant log|Σ| instead of log|Σ + I| (whitened)",
             "empirics/defenses/cem/paper.py", "L, info = torch.linalg.cholesky_ex(S + eye)",
             "L, info = torch.linalg.cholesky_ex(S + 1e-6 * eye)", tuple(CEM)),
    Mutation("cem-objective-noise", "cem_objective without |Σp| (log|Σᵢ+Σp| alone)",
             "empirics/defenses/cem/objective.py", "return _mix(w, 0.5 * (logdet - logdet_p))", "return _mix(w, 0.5 * logdet)",
             tuple(CEM)),
    Mutation("bias-k", "clause bias −k instead of −(k−1)",
             "reduction/network.py", "return -np.array([len(c) - 1 for c in f.clauses], dtype=np.float64)",
             "return -np.array([len(c) for c in f.clauses], dtype=np.float64)", tuple(REDUCTION)),
    Mutation("compact-sqrt-c", "compact network weighted c instead of √c",
             "reduction/network.py", "        s = math.sqrt(c)\n        W2 = np.zeros((m + n, m + 2 * n))",
             "        s = float(c)\n        W2 = np.zeros((m + n, m + 2 * n))", tuple(REDUCTION)),
    Mutation("milp-big-m", "MILP big-M y ≤ a − (l/2)(1 − δ) instead of a − l(1 − δ) (cuts off feasible x)",
             "reduction/exact.py", "sp.diags(-lo[bidx]) @ Sb, None, -np.inf, bu[bidx] - lo[bidx])",
             "sp.diags(-lo[bidx] / 2) @ Sb, None, -np.inf, bu[bidx] - lo[bidx] / 2)", tuple(EXACT)),
    Mutation("exact-copy-weight", "compact copy weight c instead of √c in the l1/linf inequalities",
             "reduction/exact.py", "    if net.form == \"compact\":\n        return math.sqrt(net.copies)",
             "    if net.form == \"compact\":\n        return float(net.copies)", tuple(EXACT)),
    Mutation("wilson-centre", "Wilson interval centred at (k + z²)/(n + z²) instead of (k + z²/2)/(n + z²)",
             "reduction/phase.py", "centre = (k + z2 / 2) / (n + z2)", "centre = (k + z2) / (n + z2)", tuple(EXACT)),
    Mutation("psnr", "PSNR 20·log10 instead of 10·log10 of range²/MSE",
             "empirics/metrics.py", "v = 10.0 * np.log10(data_range ** 2 / m)", "v = 20.0 * np.log10(data_range ** 2 / m)",
             ("tests/empirics/test_core_metrics.py", "empirics/metrics.py")),
    Mutation("ssim-constants", "SSIM with K1 and K2 swapped",
             "empirics/metrics.py", "k1: float = 0.01, k2: float = 0.03", "k1: float = 0.03, k2: float = 0.01",
             ("tests/empirics/test_core_metrics.py", "empirics/metrics.py")),
    Mutation("bonferroni", "family-wise critical value without the Bonferroni division by m",
             "empirics/checks.py", "return float(stats.norm.isf(alpha / m))", "return float(stats.norm.isf(alpha))",
             ("tests/empirics/test_checks.py", "empirics/checks.py")),
    Mutation("binomial-tail", "near-chance test with P(X > k) instead of P(X ≥ k)",
             "empirics/checks.py", "binom.sf(k - 1, n, chance) >= alpha", "binom.sf(k, n, chance) >= alpha",
             ("tests/empirics/test_runs_store.py", "empirics/checks.py")),
)


def _copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


def _first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    return m.group(1) if m else "(failed, test id not parsed)"


def run(mutations, keep: bool = False) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="mutants-"))
    _copy_tree(tmp)
    env = dict(os.environ, PYTHONPATH=str(tmp), OMP_NUM_THREADS="1", HYPOTHESIS_PROFILE="default")
    where = subprocess.run([sys.executable, "-c", "import theory, empirics, reduction; print(theory.__file__)"],
                           cwd=tmp, env=env, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tmp)):
        raise SystemExit(f"the copy is not the code under test (theory imported from {where})")
    rows, bad = [], 0
    for mu in mutations:
        path = tmp / mu.file
        text = path.read_text()
        if text.count(mu.old) != 1:
            rows.append((mu.id, mu.what, "STALE: source not found exactly once", 0.0))
            bad += 1
            continue
        path.write_text(text.replace(mu.old, mu.new))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
                               "not slow and not gpu", *mu.tests], cwd=tmp, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        path.write_text(text)
        if proc.returncode == 0:
            rows.append((mu.id, mu.what, "SURVIVED", dt))
            bad += 1
        else:
            rows.append((mu.id, mu.what, _first_failure(proc.stdout + proc.stderr), dt))
        print(f"{rows[-1][0]:<28} {rows[-1][2]}  ({dt:.0f} s)", flush=True)
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| mutation | what | caught by (first failing default test) |\n| --- | --- | --- |")
    for mid, what, res, _ in rows:
        print(f"| {mid} | {what} | {res} |")
    print(f"\n{len(rows) - bad} of {len(rows)} mutations killed.")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="mutation ids to run")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    a = ap.parse_args()
    muts = [m for m in MUTATIONS if a.only is None or m.id in a.only]
    if a.list:
        for m in muts:
            print(f"{m.id:<28} {m.file:<28} {m.what}")
        return
    sys.exit(run(muts, keep=a.keep))


if __name__ == "__main__":
    main()
