"""Issue 13: every mixture-entropy bound at paper dimensions, timed beside a direct numpy
implementation of the same formula (written below, timed in the same run), as a table.

For d ∈ {64, 256, 512, 2048} and K ∈ {10, 30, 100} components (full covariances
Σ_i = G_iG_iᵀ/64 of rank min(d, 64) -- singular for d > 64, as a push-forward through an encoder
with more features than inputs -- plus noise Σ_p = I; the GaussianMixture used for the entropy
bounds adds 0.1·I to be positive definite):

* upper bounds on I(z; ẑ) (``theory.mutual_information_upper_bounds``, Thm 2 = huber, kl,
  maxent), each alone and all three together, and the declared fast structures diag / scaled;
* entropy bounds of a GaussianMixture (``theory.mixture_entropy_bounds``): the upper bounds
  (which="upper"), ELK, Chernoff at α = ½ (Bhattacharyya), Chernoff over the 21-point α grid, and
  everything with the grid;
* the Monte-Carlo routines at one size (``--mc``, default d = 512, K = 30).

Columns: ``ours_s`` / ``direct_s`` wall-clock seconds (calls over 1 s: one run each; shorter
calls: the median of 3 or 9 runs alternating ours and direct, so both see the same load; the
direct implementation
is the formula typed in with numpy: ``numpy.linalg.inv`` / ``slogdet`` / ``cholesky`` per
component or pair, flattened products for the traces; it validates nothing, while ours checks
every input at the boundary); ``ratio`` = ours / direct; ``ours_MB`` /
``direct_MB`` = peak of the memory *traced by tracemalloc* during the call (numpy reports its
arrays and temporaries to tracemalloc; the inputs, the interpreter and BLAS workspace are not
counted); ``agree`` = |ours − direct| / max(1, |direct|).  At the end a fresh process computes
every bound at d = 512, K = 30 (upper bounds on I, and all four entropy bounds with the α grid)
and reports its peak resident set size (``VmHWM``: everything, inputs included; it runs first,
and ``ru_maxrss`` is not used because a Linux child inherits its parent's value across exec).

Combinations whose estimated time (from a timed Cholesky factorisation at each d and a count
of factorisation-equivalents) exceeds ``--budget-s``, or whose estimated memory exceeds
``--mem-gb``, are skipped and listed as such; the issue's must-show combinations (d = 512,
K = 30: everything; d = 2048, K = 100: the upper bounds) always run.

BLAS threads: ``--threads`` (default 1, set before numpy is imported): on a machine whose few
cores are shared, a multithreaded OpenBLAS was measured 10-60× slower per factorisation.  The
machine's load average is printed before and after: timings on a loaded machine are inflated.

Run from the repository root::

    python benchmarks/theory_scale.py            # the full table (about 40 min on 2 shared cores)
    python benchmarks/theory_scale.py --quick    # d ∈ {64, 256}, K ∈ {10, 30}
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 256, 512, 2048])
    p.add_argument("--ks", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--quick", action="store_true", help="d ∈ {64, 256}, K ∈ {10, 30}")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--budget-s", type=float, default=120.0,
                   help="skip a measurement estimated to take longer (default 120 s)")
    p.add_argument("--mem-gb", type=float, default=None,
                   help="skip combinations estimated to need more memory (default: 60%% of available)")
    p.add_argument("--mc", type=int, nargs=2, default=[512, 30], metavar=("D", "K"),
                   help="size of the Monte-Carlo table (default 512 30)")
    p.add_argument("--mc-n", type=int, default=5000, help="samples per Monte-Carlo routine (default 5000)")
    p.add_argument("--rss", type=int, nargs=2, default=None, metavar=("D", "K"),
                   help=argparse.SUPPRESS)   # internal: the fresh-process RSS measurement
    ns = p.parse_args(argv)
    if ns.quick:
        ns.dims, ns.ks, ns.mc = [64, 256], [10, 30], [256, 10]
    return ns


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import gc  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
from scipy.linalg import solve_triangular  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

import theory  # noqa: E402

LOG_2PI = math.log(2 * math.pi)
LOG_2PI_E = math.log(2 * math.pi * math.e)
RANK = 64
GRID = np.linspace(0.0, 1.0, 21)
MUST = {(512, 30): "all", (2048, 100): "upper"}


# --- the instance ---------------------------------------------------------------------------------

def instance(d, K, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=0.3, size=(K, d))
    covs = np.empty((K, d, d))
    m = min(d, RANK)
    for i in range(K):
        G = rng.normal(size=(d, m)) / math.sqrt(m)
        np.matmul(G, G.T, out=covs[i])
    return w, means, covs, np.eye(d)


# --- direct implementations: the formulas typed in with numpy ------------------------------------

def d_huber(w, means, covs, noise):
    ld_p = np.linalg.slogdet(noise)[1]
    ld = np.array([np.linalg.slogdet(c + noise)[1] for c in covs])
    return float(np.sum(w * (-np.log(w) + 0.5 * (ld - ld_p))))


def _d_kl_matrix(means, covs, shift):
    K, d = means.shape
    Cinv = np.empty((K, d, d))
    ld = np.empty(K)
    for j in range(K):
        C = covs[j] + shift
        Cinv[j] = np.linalg.inv(C)
        ld[j] = np.linalg.slogdet(C)[1]
    flat = Cinv.reshape(K, -1)
    T = covs.reshape(K, -1) @ flat.T                       # [i, j] = tr(C_j⁻¹ Σ_i)
    if np.ndim(shift) == 2:
        T += (flat @ shift.ravel())[None, :]               # + tr(C_j⁻¹ Σ_p)
    maha = np.empty((K, K))
    for j in range(K):
        D = means - means[j]
        maha[:, j] = np.sum((D @ Cinv[j]) * D, axis=1)
    kl = 0.5 * (T + maha - d + ld[None, :] - ld[:, None])
    np.fill_diagonal(kl, 0.0)
    return kl, ld


def _d_kt(w, H, D):
    return float(w @ H - w @ logsumexp(np.log(w)[None, :] - D, axis=1))


def d_kl(w, means, covs, noise):
    kl, ld = _d_kl_matrix(means, covs, noise)
    d = means.shape[1]
    return _d_kt(w, 0.5 * (d * LOG_2PI_E + ld), kl) - 0.5 * (d * LOG_2PI_E + np.linalg.slogdet(noise)[1])


def d_maxent(w, means, covs, noise):
    dm = means - w @ means
    cz = np.tensordot(w, covs, axes=1) + noise + (w[:, None] * dm).T @ dm
    return 0.5 * float(np.linalg.slogdet(cz)[1] - np.linalg.slogdet(noise)[1])


def d_mi_all(w, means, covs, noise):
    return {"huber": d_huber(w, means, covs, noise), "kl": d_kl(w, means, covs, noise),
            "maxent": d_maxent(w, means, covs, noise)}


def d_diag(w, means, var, noise_var):
    c = var + noise_var
    ld, ld_p = np.log(c).sum(1), np.log(noise_var).sum()
    d = means.shape[1]
    kl = 0.5 * ((c[:, None, :] / c[None, :, :]).sum(-1)
                + (((means[:, None, :] - means[None, :, :]) ** 2) / c[None, :, :]).sum(-1)
                - d + ld[None, :] - ld[:, None])
    H = 0.5 * (d * LOG_2PI_E + ld)
    h_eps = 0.5 * (d * LOG_2PI_E + ld_p)
    dm = means - w @ means
    cz = np.diag(w @ c) + (w[:, None] * dm).T @ dm
    return {"huber": float(np.sum(w * (-np.log(w) + 0.5 * (ld - ld_p)))), "kl": _d_kt(w, H, kl) - h_eps,
            "maxent": 0.5 * float(np.linalg.slogdet(cz)[1] - ld_p)}


def d_entropy_upper(w, means, covs):
    kl, ld = _d_kl_matrix(means, covs, 0.0)
    H = 0.5 * (means.shape[1] * LOG_2PI_E + ld)
    return {"huber_upper": float(np.sum(w * (-np.log(w) + H))), "kl_upper": _d_kt(w, H, kl)}


def _d_pair(mi, ci, mj, cj, a):
    L = np.linalg.cholesky((1 - a) * ci + a * cj)
    y = solve_triangular(L, mj - mi, lower=True, check_finite=False)
    return 2.0 * float(np.sum(np.log(np.diag(L)))), float(y @ y)


def d_elk(w, means, covs):
    K, d = means.shape
    lk = np.empty((K, K))
    for i in range(K):
        for j in range(i, K):
            ld, q = _d_pair(means[i], covs[i], means[j], covs[j], 0.5)   # S = (Σ_i + Σ_j)/2
            lk[i, j] = lk[j, i] = -0.5 * (d * (LOG_2PI + math.log(2)) + ld + 0.5 * q)
    return -float(w @ logsumexp(np.log(w)[None, :] + lk, axis=1))


def d_chernoff(w, means, covs, alphas):
    K, d = means.shape
    ld = np.array([np.linalg.slogdet(c)[1] for c in covs])
    H = 0.5 * (d * LOG_2PI_E + ld)
    best = -np.inf
    for a in alphas:
        C = np.zeros((K, K))
        if 0 < a < 1:
            for i in range(K):
                for j in range(K):
                    if i != j:
                        lds, q = _d_pair(means[i], covs[i], means[j], covs[j], a)
                        C[i, j] = 0.5 * a * (1 - a) * q + 0.5 * (lds - (1 - a) * ld[i] - a * ld[j])
        best = max(best, _d_kt(w, H, C))
    return best


def d_all_grid(w, means, covs):
    out = d_entropy_upper(w, means, covs)
    out["elk_lower"] = d_elk(w, means, covs)
    out["chernoff_lower"] = d_chernoff(w, means, covs, GRID)
    return out


def d_entropy_mc(g, n, rng):
    x = g.sample(n, rng)
    lp = np.stack([multivariate_normal(m, c).logpdf(x) for m, c in zip(g.means, g.covs)], axis=1)
    v = -logsumexp(lp + np.log(g.weights)[None, :], axis=1)
    return float(v.mean())


# --- measurement -----------------------------------------------------------------------------------

def traced(fn):
    """(value, seconds, peak MB traced by tracemalloc) of one call."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    val = fn()
    t = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return val, t, peak / 2**20


def timed(fns, first):
    """Seconds per call of each function: calls under 1 s are repeated without tracing
    (tracemalloc slows small allocations), *alternating* between the functions so that both sides
    of a ratio see the same load on a shared machine, and the median is kept (3 rounds, 9 below
    0.1 s); longer calls keep the time of their one traced run (``first``)."""
    if max(first) >= 1.0:
        return list(first)
    rounds = 3 if max(first) > 0.1 else 9
    ts = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            ts[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in ts]


def _scalar(v):
    if isinstance(v, dict):
        return v
    return {"value": float(v)}


def agree(a, b):
    a, b = _scalar(a), _scalar(b)
    keys = [k for k in b if k in a]
    return max(abs(a[k] - b[k]) / max(1.0, abs(b[k])) for k in keys)


def chol_seconds(d):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(d, d))
    S = A @ A.T / d + np.eye(d)
    np.linalg.cholesky(S)
    t0 = time.perf_counter()
    n = max(1, int(2e8 // d**3) + 1)
    for _ in range(n):
        np.linalg.cholesky(S)
    return (time.perf_counter() - t0) / n


def available_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


# --- the table --------------------------------------------------------------------------------------

def rows_for(d, K, chol_s, budget, mem_gb):
    """(name, must-run, estimated seconds ours, est. direct, est. GB, ours(), direct()) per bound."""
    P = K * (K - 1) / 2
    gb_in = K * d * d * 8 / 2**30
    must = MUST.get((d, K))
    state = {}

    def data():
        if "mi" not in state:
            state["mi"] = instance(d, K)
        return state["mi"]

    def gmm():
        if "gmm" not in state:
            w, m, c, _ = data()
            state["gmm"] = theory.GaussianMixture(w, m, c + 0.1 * np.eye(d))
        return state["gmm"]

    def diag_data():
        w, m, c, _ = data()
        return w, m, np.ascontiguousarray(np.diagonal(c, axis1=1, axis2=2)), np.ones(d)

    def scaled_data():
        w, m, c, noise = data()
        return w, m, (np.linspace(0.5, 2.0, K), c[0]), noise

    mi = theory.mutual_information_upper_bounds
    out = [
        ("I upper: huber (Thm 2)", must, 2 * K, 2 * K, 2 * gb_in,
         lambda: theory.gmm_mutual_information_bound(data()[0], data()[2], data()[3]),
         lambda: d_huber(data()[0], data()[1], data()[2], data()[3])),
        ("I upper: kl", must, 5 * K, 8 * K, 2 * gb_in,
         lambda: {"value": -theory.conditional_entropy_lower_bound(0.0, *data(), method="kl")},
         lambda: {"value": d_kl(*data())}),
        ("I upper: maxent", must, 2 * K, 1, 2 * gb_in,
         lambda: {"value": -theory.conditional_entropy_lower_bound(0.0, *data(), method="maxent")},
         lambda: {"value": d_maxent(*data())}),
        ("I upper: all three", must, 5 * K, 10 * K, 2 * gb_in,
         lambda: {k: v for k, v in mi(*data()).items() if k != "best"}, lambda: d_mi_all(*data())),
        ("I upper: all three, structure=diag", must, 0, 0, 0.1,
         lambda: {k: v for k, v in mi(*diag_data(), structure="diag").items() if k != "best"},
         lambda: d_diag(*diag_data())),
        ("I upper: all three, structure=scaled", must, 4, 0, 0.2,
         lambda: {k: v for k, v in mi(*scaled_data(), structure="scaled").items() if k != "best"},
         None),
    ]
    ent = [
        ("H upper: huber + kl (which='upper')", must == "all" or None, 4 * K, 8 * K, 4 * gb_in,
         lambda: {k: v for k, v in theory.mixture_entropy_bounds(gmm(), which="upper").items() if k != "upper"},
         lambda: d_entropy_upper(gmm().weights, gmm().means, gmm().covs)),
        ("H lower: elk", must == "all" or None, 2 * K + P, 2 * K + P, 3 * gb_in,
         lambda: {"value": theory.mixture_entropy_bounds(gmm(), which="elk_lower")["elk_lower"]},
         lambda: {"value": d_elk(gmm().weights, gmm().means, gmm().covs)}),
        ("H lower: chernoff α=½", must == "all" or None, 2 * K + P, 2 * K + 2 * P, 3 * gb_in,
         lambda: {"value": theory.mixture_entropy_bounds(gmm(), which="chernoff_lower")["chernoff_lower"]},
         lambda: {"value": d_chernoff(gmm().weights, gmm().means, gmm().covs, [0.5])}),
        ("H lower: chernoff 21-point α grid", must == "all" or None, 3 * K + 8 * P, 2 * K + 38 * P, 3 * gb_in,
         lambda: {"value": theory.mixture_entropy_bounds(gmm(), alphas="grid",
                                                         which="chernoff_lower")["chernoff_lower"]},
         lambda: {"value": d_chernoff(gmm().weights, gmm().means, gmm().covs, GRID)}),
        ("H all four bounds, α grid", must == "all" or None, 8 * K + 8 * P, 10 * K + 39 * P, 4 * gb_in,
         lambda: {k: v for k, v in theory.mixture_entropy_bounds(gmm(), alphas="grid").items()
                  if k in theory.ENTROPY_BOUNDS},
         lambda: d_all_grid(gmm().weights, gmm().means, gmm().covs)),
    ]
    # the instance is built before the timed calls (setup), never inside them
    rows = [(r, data) for r in out] + [(r, gmm) for r in ent]
    for (name, must_run, eq_ours, eq_direct, gb, ours, direct), setup in rows:
        est_o, est_d = eq_ours * chol_s, eq_direct * chol_s
        run_o = bool(must_run) or (est_o <= budget and gb <= mem_gb)
        run_d = direct is not None and (est_d <= max(budget, 3 * est_o if must_run else 0)) and gb <= mem_gb
        yield name, run_o, run_d, est_o, est_d, gb, setup, ours, direct


def table(args):
    mem_gb = args.mem_gb if args.mem_gb is not None else 0.6 * available_gb()
    print(f"BLAS threads {args.threads}; load average before: {os.getloadavg()}; memory limit {mem_gb:.1f} GB")
    head = f"{'d':>5} {'K':>4}  {'bound':38s} {'ours_s':>8} {'ours_MB':>8} {'direct_s':>9} {'direct_MB':>9} {'ratio':>6} {'agree':>8}"
    print(head)
    print("-" * len(head))
    results = []
    for d in args.dims:
        chol_s = chol_seconds(d)
        for K in args.ks:
            for name, run_o, run_d, est_o, est_d, gb, setup, ours, direct in rows_for(d, K, chol_s, args.budget_s,
                                                                                     mem_gb):
                if not run_o:
                    why = f"est. {est_o:.0f} s > budget" if est_o > args.budget_s else f"est. {gb:.1f} GB > limit"
                    print(f"{d:5d} {K:4d}  {name:38s} skipped ({why})")
                    continue
                setup()
                vo, to, mo = traced(ours)
                if run_d:
                    vd, td, md = traced(direct)
                    to, td = timed([ours, direct], [to, td])
                else:
                    (to,) = timed([ours], [to])
                line = f"{d:5d} {K:4d}  {name:38s} {to:8.3f} {mo:8.1f}"
                row = {"d": d, "K": K, "bound": name, "ours_s": to, "ours_MB": mo}
                if run_d:
                    row.update(direct_s=td, direct_MB=md, ratio=to / td, agree=agree(vo, vd))
                    line += f" {td:9.3f} {md:9.1f} {to / td:6.2f} {row['agree']:8.1e}"
                elif direct is None:
                    line += f" {'(none)':>9}"
                else:
                    line += f" {'skipped':>9} (est. {est_d:.0f} s)"
                print(line, flush=True)
                results.append(row)
            gc.collect()
    print(f"load average after: {os.getloadavg()}")
    return results


def mc_table(d, K, n):
    print(f"\nMonte-Carlo routines at d = {d}, K = {K}, n = {n} (A = I, noise 0.5·I):")
    w, means, covs, _ = instance(d, K, seed=2)
    g = theory.GaussianMixture(w, means, covs + 0.1 * np.eye(d))
    A, cn = np.eye(d), 0.5 * np.eye(d)
    rng = np.random.default_rng
    rows = [
        ("mixture_entropy_mc", lambda: theory.mixture_entropy_mc(g, n, rng(0)).value,
         lambda: d_entropy_mc(g, n, rng(0))),
        ("MixturePosterior (construction)", lambda: theory.mixture_posterior(g, A, cn) and 0.0, None),
        ("mixture_mmse_mc", lambda: theory.mixture_mmse_mc(g, A, cn, n, rng(0)).value, None),
        ("mixture_conditional_entropy_mc", lambda: theory.mixture_conditional_entropy_mc(g, A, cn, n, rng(0)).value,
         None),
        ("mixture_prior_fisher_mc", lambda: theory.mixture_prior_fisher_mc(g, n, rng(0)).value, None),
    ]
    naive = n * K * d * 8 / 2**20
    print(f"  (an unblocked (n, K, d) temporary would be {naive:.0f} MB)")
    for name, ours, direct in rows:
        vo, to, mo = traced(ours)
        line = f"  {name:34s} {to:8.3f} s {mo:8.1f} MB"
        if direct is not None:
            vd, td, md = traced(direct)
            line += f"   direct (scipy.stats per component) {td:8.3f} s {md:8.1f} MB, agree {agree(vo, vd):.1e}"
        print(line, flush=True)


def peak_rss_mb():
    """This process's peak resident set size: VmHWM from /proc (Linux), else ru_maxrss.  (On Linux
    ru_maxrss of a freshly exec'ed child starts at its parent's peak; VmHWM does not.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def rss_child(d, K):
    w, means, covs, noise = instance(d, K)
    t0 = time.perf_counter()
    theory.mutual_information_upper_bounds(w, means, covs, noise)
    g = theory.GaussianMixture(w, means, covs + 0.1 * np.eye(d))
    theory.mixture_entropy_bounds(g, alphas="grid")
    t = time.perf_counter() - t0
    print(f"{peak_rss_mb():.0f} {t:.2f}")


def main():
    args = ARGS
    if args.rss:
        rss_child(*args.rss)
        return
    d, K = (512, 30) if not args.quick else (256, 10)
    out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--rss", str(d), str(K)],
                         capture_output=True, text=True, check=True).stdout.split()
    table(args)
    mc_table(args.mc[0], args.mc[1], args.mc_n)
    print(f"\nfresh process, d = {d}, K = {K}: every bound (upper bounds on I; all four entropy bounds with the "
          f"21-point α grid, GaussianMixture construction included) in {float(out[1]):.2f} s, "
          f"peak RSS {float(out[0]):.0f} MB (VmHWM: instance and interpreter included; run before the table)")


if __name__ == "__main__":
    main()
