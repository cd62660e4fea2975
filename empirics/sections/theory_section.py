"""Theorem 1 / Theorem 2 battery against exact (linear-Gaussian) and Monte-Carlo (mixture) truth.

Checks (CEM paper, Xia et al. CVPR 2025, Prop. 1, Thm 1, Prop. 2, Thm 2; docs/ground-truths.md):

* equality case x ~ N(0, I_d), z = x + N(0, 0.25 I): MMSE/d = Thm 1 bound = 0.2 for d = 1..64;
* random linear-Gaussian channels: Thm 1 bound ≤ MMSE/d (exact), van Trees ≤ Thm 1(exact H),
  I(x;z) = H(z) − H(z|x);
* random Gaussian-mixture priors in d ∈ {1, 2, 5, 10} through a linear encoder plus Gaussian noise
  (so ẑ *is* a mixture and Thm 2's inequality holds exactly), with Monte-Carlo truth ± s.e.:
  MMSE/d ≥ bound(exact H(x|z)) ≥ bound(kl) ≥ bound(huber) [= Thm 1 ∘ Thm 2 as printed],
  van Trees ≤ bound(exact H), Thm 2 as printed = Huber route, the entropy-bound sandwich;
* exact-posterior MMSE vs brute-force importance sampling (d ≤ 2);
* sympy checks of Thm 1's proof chain.

Every row states its tolerance and ``margin ≥ 0`` exactly when it passes: Monte-Carlo checks have
``margin = value − bound + 5 s.e.`` (a one-sided 5-s.e. tolerance: false-failure rate 3e-7 per
check; the s.e. is in the ``note``), closed-form checks allow float64 round-off (1e-12 relative
unless stated).  In Thm 2's bounds H(x) is itself a Monte-Carlo estimate (the mixture prior's
entropy), so those bounds carry its s.e. too (``*_se`` columns).  The random instances are
:func:`theory.random_spd` / :func:`theory.random_mixture`, the brute-force MMSE is
:func:`theory.mixture_mmse_importance_sampling` -- the same code the tests use.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

import theory

from ..progress import as_progress
from ..figures import new_figure, save_figure
from ..results import Section

__all__ = ["add_arguments", "verify_args", "run"]


#: what --quick changes (listed in --help only here: the commands that accept it)
QUICK_HELP = "smaller Monte-Carlo sizes (--n-mc 4000, --n-channels 10)"
#: the examples at the end of --help
EXAMPLES = """examples:
  invlimits theory --out runs/theory                 # Thm 1 / Thm 2 battery and the bounds-vs-truth figure
  invlimits theory --quick --out runs/theory-quick   # smaller Monte-Carlo sizes
  invlimits theory --dims 2 8 --n-mc 50000 --out runs/theory-big"""

K_SE = 5.0  # tolerance of Monte-Carlo checks in standard errors (see module docstring)


def add_arguments(parser) -> None:
    """The subcommand's options (argparse)."""
    parser.add_argument("--n-mc", type=int, default=None,
                        help="Monte-Carlo sample size per estimate (default 20000; 4000 with --quick)")
    parser.add_argument("--n-channels", type=int, default=None,
                        help="random linear-Gaussian channels per dimension (default 50; 10 with --quick)")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 5, 10],
                        help="input dimensions of the random mixture instances (default: 1 2 5 10)")
    parser.add_argument("--no-figure", action="store_true", help="skip the bounds-vs-truth figure")


def verify_args(ns) -> None:
    """`invlimits verify`: defaults (quick: smaller Monte-Carlo sizes, same checks)."""
    ns.no_figure = getattr(ns, "no_figure", False)


ROUNDOFF = 1e-12  # relative tolerance of closed-form comparisons (float64 round-off)


def _mc_row(sec, check, instance, value, bound, se, note=""):
    """value ≥ bound up to K_SE·se: margin = value − bound + K_SE·se (≥ 0 exactly when it passes)."""
    margin = value - bound + K_SE * se
    sec.add(check, instance, value, bound, margin, margin >= 0,
            note=(note + "; " if note else "") + f"MC s.e. {se:.2e}", tolerance=f"{K_SE:g} s.e. (one-sided)")


def _at_least(sec, check, instance, value, bound, note=""):
    """Closed forms: value ≥ bound up to round-off, margin = value − bound·(1 − 1e-12) for bound ≥ 0."""
    margin = value - bound * (1 - ROUNDOFF) if bound >= 0 else value - bound * (1 + ROUNDOFF)
    sec.add(check, instance, value, bound, margin, margin >= 0, note=note,
            tolerance=f"{ROUNDOFF:g} relative (round-off)")


def _equality(sec, dims):

    errs = []
    for d in dims:
        A, cx, cn = np.eye(d), np.eye(d), 0.25 * np.eye(d)
        m = theory.linear_gaussian_mmse(A, cx, cn) / d
        b = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
        err = max(abs(m - 0.2), abs(b - 0.2))
        errs.append({"d": d, "mmse_per_dim": m, "thm1_bound": b, "max_abs_error": err})
        if d in (1, 8, 64):
            sec.add("equality case: MMSE/d = Thm 1 bound = 0.2 (tol 1e-12)", f"x~N(0,I_{d}), z=x+N(0,0.25I)",
                    m, b, 1e-12 - err, err <= 1e-12, tolerance="1e-12 absolute")
    worst = max(r["max_abs_error"] for r in errs)
    sec.add("equality case, all d (max |error| vs 0.2, tol 1e-12)", f"d = {dims[0]}..{dims[-1]}",
            worst, 1e-12, 1e-12 - worst, worst <= 1e-12, tolerance="1e-12 absolute")
    sec.tables["equality case"] = [errs[i] for i in range(len(errs)) if errs[i]["d"] in (1, 2, 4, 8, 16, 32, 64)]
    sec.table_notes["equality case"] = (
        "x ~ N(0, I_d), z = x + N(0, 0.25 I): the posterior is isotropic, so Thm 1 is an equality and both "
        "the exact MMSE per dimension and the bound exp(2H(x|z)/d)/(2πe) equal 0.25/1.25 = 0.2; "
        "max_abs_error = the larger of their distances to 0.2 (all d = 1..64 are checked, a few shown).")


def _channels(sec, rng, n_channels):

    rows = []
    for d in (1, 2, 5, 10):
        ratios, vt_gap, mi_err = [], [], []
        for _ in range(n_channels):
            k = int(rng.integers(1, d + 2))
            A = rng.normal(size=(k, d))
            cx, cn = theory.random_spd(rng, d), theory.random_spd(rng, k, 0.05, 2.0)
            mmse = theory.linear_gaussian_mmse(A, cx, cn) / d
            t1 = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
            vt = theory.fisher_bounds(A, cn, prior_fisher=np.linalg.inv(cx))["van_trees"]
            ratios.append(mmse / t1)
            vt_gap.append(t1 / vt)
            mi = theory.linear_gaussian_mutual_information(A, cx, cn)
            mi_err.append(abs(mi - (theory.gaussian_entropy(A @ cx @ A.T + cn) - theory.gaussian_entropy(cn))))
        inst = f"{n_channels} random channels, d={d}, k=1..{d + 1}"
        r = min(ratios)
        # exact closed forms: allow float64 round-off only (1e-12 relative)
        _at_least(sec, "Thm 1: min over channels of (MMSE/d) / bound >= 1", inst, r, 1.0)
        g = min(vt_gap)
        _at_least(sec, "van Trees <= Thm 1(exact H): min bound/vanTrees >= 1", inst, g, 1.0)
        e = max(mi_err)
        sec.add("I(x;z) closed form = H(z) - H(z|x) (tol 1e-9)", inst, e, 1e-9, 1e-9 - e, e <= 1e-9,
                tolerance="1e-9 absolute")
        rows.append({"d": d, "channels": n_channels, "min_mmse_over_bound": r, "max_mmse_over_bound": max(ratios),
                     "min_bound_over_van_trees": g, "max_mi_error": e})
    sec.tables["random linear-Gaussian channels"] = rows
    sec.table_notes["random linear-Gaussian channels"] = (
        "z = Ax + ε with random A (k×d), SPD Cov x and Cov ε; closed forms throughout. mmse_over_bound = "
        "(exact MMSE/d) / Thm 1 bound (≥ 1; 1 when the posterior is isotropic, e.g. d = 1); "
        "bound_over_van_trees = Thm 1 bound / van Trees bound (≥ 1: with the exact H(x|z), Thm 1 is never "
        "weaker); max_mi_error = |I(x;z) − (H(z) − H(z|x))| over the channels.")


def _mixture_truth(g, A, cn, n, rng):

    d = g.dim
    mmse = theory.mixture_mmse_mc(g, A, cn, n, rng)
    hxz = theory.mixture_conditional_entropy_mc(g, A, cn, n, rng)
    hx = theory.mixture_entropy_mc(g, n, rng)
    jp = theory.mixture_prior_fisher_mc(g, n, rng)
    w, means, covs = theory.affine_pushforward(g, A)
    t1 = theory.mse_lower_bound(hxz.value, d)
    out = {
        "mmse": mmse.value / d, "mmse_se": mmse.stderr / d,
        "h_x_given_z": hxz.value, "h_x_given_z_se": hxz.stderr, "h_x": hx.value, "h_x_se": hx.stderr,
        "bound_exact_h": t1, "bound_exact_h_se": 2.0 / d * t1 * hxz.stderr,
    }
    for m in ("kl", "huber", "maxent"):
        hb = theory.conditional_entropy_lower_bound(hx.value, g.weights, means, covs, cn, method=m)
        out[f"h_bound_{m}"] = hb
        out[f"bound_{m}"] = theory.mse_lower_bound(hb, d)
        out[f"bound_{m}_se"] = 2.0 / d * out[f"bound_{m}"] * hx.stderr
    F = theory.fisher_information_linear(A, cn)
    vt = theory.van_trees_mse(F, jp.value)
    out["van_trees"], out["van_trees_se"] = vt, vt ** 2 / d * jp.stderr
    out["thm2_printed"] = theory.gmm_mutual_information_bound(g.weights, covs, cn)
    zmix = theory.GaussianMixture(w, means, covs + cn[None])
    out["huber_route"] = (theory.mixture_entropy_bounds(zmix, which="huber_upper")["huber_upper"]
                          - theory.gaussian_entropy(cn))
    return out, zmix


def _mixtures(sec, rng, dims, n):

    rows = []
    for d in dims:
        g = theory.random_mixture(rng, d)
        k = max(1, d // 2) if d > 1 else 1
        A = rng.normal(size=(k, d)) / math.sqrt(d)
        cn = 0.3 * np.eye(k)
        t, zmix = _mixture_truth(g, A, cn, n, rng)
        inst = f"d={d}, K=3 mixture, z=Ax+N(0,0.3I_{k}), n={n}"
        _mc_row(sec, "MMSE/d >= bound(exact H(x|z))", inst, t["mmse"], t["bound_exact_h"],
                math.hypot(t["mmse_se"], t["bound_exact_h_se"]))
        se_h = math.hypot(t["h_x_given_z_se"], t["h_x_se"])
        _mc_row(sec, "H(x|z) >= H(x) - U_kl  [bound(exact H) >= bound(kl)]", inst, t["h_x_given_z"],
                t["h_bound_kl"], se_h, note="entropies in nats")
        _at_least(sec, "bound(kl) >= bound(huber) = Thm 1 o Thm 2 (exact)", inst, t["bound_kl"], t["bound_huber"])
        _mc_row(sec, "van Trees <= bound(exact H)", inst, t["bound_exact_h"], t["van_trees"],
                math.hypot(t["bound_exact_h_se"], t["van_trees_se"]))
        e = abs(t["thm2_printed"] - t["huber_route"])
        sec.add("Thm 2 as printed = Huber route (tol 1e-10)", inst, t["thm2_printed"], t["huber_route"],
                1e-10 - e, e <= 1e-10, tolerance="1e-10 absolute")
        hz = theory.mixture_entropy_mc(zmix, n, rng)
        b = theory.mixture_entropy_bounds(zmix, alphas="grid")
        _mc_row(sec, "H(z) <= kl_upper", inst, b["kl_upper"], hz.value, hz.stderr)
        _mc_row(sec, "max(elk, chernoff) <= H(z)", inst, hz.value, b["lower"], hz.stderr)
        rows.append({"d": d, "k": k, **{key: t[key] for key in
                     ("mmse", "mmse_se", "bound_exact_h", "bound_exact_h_se", "bound_kl", "bound_kl_se",
                      "bound_huber", "bound_huber_se", "bound_maxent", "bound_maxent_se", "van_trees",
                      "van_trees_se")}})
    sec.tables["random mixtures: MMSE/d and its lower bounds"] = rows
    sec.table_notes["random mixtures: MMSE/d and its lower bounds"] = (
        "bound(X) = Thm 1 applied to a value of H(x|z): exact (Monte Carlo with the exact posterior), or "
        "H(x) − U with U the KL / Huber (= Thm 2 as printed) / max-entropy upper bound on I(z;ẑ). "
        "Here ẑ = Ax is exactly a Gaussian mixture, so every inequality holds exactly; with H(x) by Monte Carlo "
        "each bound's value is an estimate ± s.e. (guarantee: none) — check-defense's guaranteed floors use H(x)'s "
        "deterministic lower bound or its confidence limit instead. "
        "*_se = standard errors (delta method: the bounds inherit the s.e. of H(x|z), H(x) or Tr J).")


def _brute_force(sec, rng, n_outer, n_inner):
    """Exact-posterior MMSE vs self-normalised importance sampling with the prior as proposal."""

    for d in (1, 2):
        g = theory.random_mixture(rng, d)
        A = np.eye(d)
        cn = 0.5 * np.eye(d)
        exact = theory.mixture_mmse_mc(g, A, cn, 4 * n_outer, rng)
        bf = theory.mixture_mmse_importance_sampling(g, A, cn, n_outer, rng, n_proposal=n_inner, block=100)
        se = math.hypot(exact.stderr, bf.stderr)
        diff = bf.value - exact.value
        # two-sided: |diff| within 4 s.e. (+ the SNIS estimator's estimated upward bias)
        margin = min(4 * se + bf.bias - diff, 4 * se + diff)
        sec.add("exact-posterior MMSE = importance-sampling MMSE (4 s.e. + SNIS bias)",
                f"d={d}, K=3 mixture, z=x+N(0,0.5I)", exact.value, bf.value, margin, margin >= 0,
                note=f"s.e. {se:.2e}, SNIS bias est. {bf.bias:.2e}", tolerance="4 s.e. (two-sided) + bias")


def _symbolic(sec):
    from theory import symbolic  # deferred: sympy, for these checks only

    for v in symbolic.check_all():
        sec.add(f"sympy: {v.statement}", v.name, None, None, None, v.holds)


def _sweep(rng, n, noises):
    """MMSE/d and its bounds vs noise variance for one fixed mixture (d = 2) and a Gaussian (d = 2)."""

    g = theory.GaussianMixture([0.4, 0.35, 0.25], [[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]],
                               [0.3 * np.eye(2), [[0.5, 0.2], [0.2, 0.4]], 0.2 * np.eye(2)])
    A = np.eye(2)
    rows = []
    for s2 in noises:
        t, _ = _mixture_truth(g, A, s2 * np.eye(2), n, rng)
        cx = np.diag([1.0, 0.25])
        lg = {"lg_mmse": theory.linear_gaussian_mmse(A, cx, s2 * np.eye(2)) / 2,
              "lg_bound": theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, s2 * np.eye(2)), 2),
              "lg_van_trees": theory.fisher_bounds(A, s2 * np.eye(2), prior_fisher=np.linalg.inv(cx))["van_trees"]}
        rows.append({"noise_var": s2, **{k: t[k] for k in ("mmse", "mmse_se", "bound_exact_h", "bound_exact_h_se",
                                                          "bound_kl", "bound_kl_se", "bound_huber", "bound_huber_se",
                                                          "bound_maxent", "bound_maxent_se", "van_trees",
                                                          "van_trees_se")},
                     **lg})
    return rows


def _figure(rows, out: Path) -> str:
    s = np.array([r["noise_var"] for r in rows])
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.errorbar(s, [r["mmse"] for r in rows], yerr=[K_SE * r["mmse_se"] for r in rows], fmt="o-", color="k",
                label="true MMSE/d (MC, ±5 s.e.)")
    ax.plot(s, [r["bound_exact_h"] for r in rows], "s--", label="Thm 1 (exact H(x|z))")
    ax.plot(s, [r["bound_maxent"] for r in rows], ":", label="Thm 1 + max-entropy U")
    ax.plot(s, [r["bound_kl"] for r in rows], "^-", label="Thm 1 + KL U")
    ax.plot(s, [r["bound_huber"] for r in rows], "v-", label="Thm 1 + Thm 2 (Huber U)")
    ax.plot(s, [r["van_trees"] for r in rows], "x-.", label="van Trees")
    ax.set(xscale="log", yscale="log", xlabel="noise variance σ²", ylabel="per-dimension MSE",
           title="3-component mixture prior, d = 2, z = x + N(0, σ²I)")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(s, [r["lg_mmse"] for r in rows], "o-", color="k", label="MMSE/d (exact)")
    ax.plot(s, [r["lg_bound"] for r in rows], "s--", label="Thm 1 (exact H)")
    ax.plot(s, [r["lg_van_trees"] for r in rows], "x-.", label="van Trees")
    ax.set(xscale="log", yscale="log", xlabel="noise variance σ²", title="Gaussian prior diag(1, 0.25), d = 2")
    ax.legend(fontsize=7)
    return save_figure(fig, Path(out) / "theory_bounds_vs_truth.png", dpi=110)


def run(args):
    """Run the subcommand: its sections (and the top-level keys it adds to ``results.json``)."""
    t0 = time.perf_counter()
    quick = bool(getattr(args, "quick", False))
    n = args.n_mc if getattr(args, "n_mc", None) else (4000 if quick else 20000)
    n_channels = args.n_channels if getattr(args, "n_channels", None) else (10 if quick else 50)
    if n < 100:
        raise ValueError(f"--n-mc must be >= 100; got {n}")
    if n_channels < 1:
        raise ValueError(f"--n-channels must be >= 1; got {n_channels}")
    dims = list(getattr(args, "dims", [1, 2, 5, 10]))
    if any(d < 1 for d in dims):
        raise ValueError(f"--dims must be positive integers; got {dims}")
    rng = np.random.default_rng(args.seed)
    sec = Section("theory", "Theory: Thm 1 / Thm 2 against exact and Monte-Carlo truth",
                  description=(__doc__ or "").strip().split("\n\n")[0])
    prog = as_progress(getattr(args, "progress", False))
    prog.step("equality case d = 1..64, random linear-Gaussian channels ...")
    _equality(sec, list(range(1, 65)))
    _channels(sec, rng, n_channels)
    prog.step(f"mixtures in d = {', '.join(map(str, dims))} ({n:,} Monte-Carlo draws each) ...")
    _mixtures(sec, rng, dims, n)
    prog.step("brute-force posterior means, then the noise sweep ...")
    _brute_force(sec, rng, 500 if quick else 1000, 5000 if quick else 10000)
    noises = np.geomspace(0.02, 5.0, 6 if quick else 10)
    rows = _sweep(rng, max(2000, n // 4), noises)
    worst = min(min(r["mmse"] - r["bound_exact_h"] + K_SE * math.hypot(r["mmse_se"], r["bound_exact_h_se"]),
                    r["bound_kl"] - r["bound_huber"] * (1 - ROUNDOFF)) for r in rows)
    sec.add("sweep: MMSE/d >= bound(exact H) and bound(kl) >= bound(huber) at every σ²",
            f"d=2 mixture, {len(rows)} noise levels", worst, 0.0, worst, worst >= 0,
            note="margin = min over σ² of both margins (MMSE/d − bound(exact H) + 5 s.e.; bound(kl) − bound(huber))",
            tolerance=f"{K_SE:g} s.e. / {ROUNDOFF:g} relative")
    sec.tables["sweep: MMSE/d and bounds vs noise"] = rows
    sec.table_notes["sweep: MMSE/d and bounds vs noise"] = (
        "Left panel of the figure. Prior: a 3-component mixture in d = 2, z = x + N(0, σ² I) (noise_var = σ²). "
        "mmse = MMSE/d by Monte Carlo over the exact posterior (± mmse_se); bound_exact_h = Thm 1 at the "
        "Monte-Carlo H(x|z); bound_kl / bound_huber (= Thm 2 as printed) / bound_maxent = Thm 1 at H(x) − U "
        "for that upper bound U on I(z;ẑ); van_trees = the Bayesian Cramér–Rao bound; *_se = standard errors "
        "(Monte Carlo, delta method). lg_* = the same for a Gaussian prior diag(1, 0.25), all exact (right panel).")
    _symbolic(sec)
    if not getattr(args, "no_figure", False):
        sec.figures.append(_figure(rows, args.out))
    sec.data["settings"] = {"n_mc": n, "n_channels": n_channels, "dims": dims, "seed": args.seed, "k_se": K_SE}
    sec.seconds = time.perf_counter() - t0
    return [sec]
