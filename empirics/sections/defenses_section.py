"""Defenses and CEM: the objective, its fast route, bounds vs attacks, and the CEM experiments.

Default (also run by ``invlimits verify``): a small, fast battery —
(1) ``cem_objective`` equals ``theory.gmm_mutual_information_bound`` (Thm 2's sum) on random
mixtures; (2) the low-rank per-batch route of CEM equals the dense (fresh-Cholesky) route;
(3) on a known Gaussian mixture with a linear encoder (ẑ exactly a mixture, so Thm 2 holds), no
measured attack MSE, and not the exact MMSE, falls below a bound marked rigorous (Thm 1 + Thm 2
and its kl / maxent variants, with a Monte-Carlo lower limit of H(x)); (4) a small CEM experiment
on digits: noise σ = 0.1 alone and with CEM (λ = 0.01, 0.05; ``--quick``: 0.01 only, 4 epochs) —
CEM must raise the Theorem-2 estimate of H(x|z) it maximises; accuracy and held-out decoder-attack MSE are
tabulated beside it (the attack MSE is reported, not asserted: see the defense table for seeds).

``--experiment entropy-vs-mse`` (Fig. 3 analogue on digits), ``--experiment defense-table``
(Table 1 analogue on digits, ≥ 3 seeds) and ``--experiment synthetic`` (the bound-vs-truth sweep)
run the full experiments; each appends one JSONL record per finished model under ``--out`` and
skips finished models when rerun.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..report import Section


def add_arguments(p):
    p.add_argument("--experiment", default="verify",
                   choices=["verify", "entropy-vs-mse", "defense-table", "synthetic"],
                   help="which experiment (default: the fast verify battery)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--sigmas", default="0.01,0.02,0.05,0.1,0.2,0.3,0.5,0.8",
                   help="noise levels of the entropy-vs-mse / synthetic sweeps")
    p.add_argument("--lams", default="0", help="CEM λ values of the entropy-vs-mse sweep (0 = noise only)")
    p.add_argument("--lam", type=float, default=0.05, help="CEM λ of the defense table")
    p.add_argument("--baselines", default="noise,dropout,nopeek,arl",
                   help="base defenses of the defense table")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the defense table")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--attack-epochs", type=int, default=15)
    p.add_argument("--attacks", default="decoder", help="attacks of the defense table (decoder,gan,optimization)")


SYNTHETIC_NOTE = (
    "A known Gaussian mixture x in d dimensions through a trained linear encoder ẑ = Ax and noise "
    "z = ẑ + N(0, σ² I), so ẑ is exactly a mixture and every bound is rigorous (H(x) at its lower 3-s.e. "
    "Monte-Carlo limit). bound_mse = Theorem 1 at H(x) − U for the named upper bound U on I(z;ẑ) "
    "(huber = Thm 2 as printed); against = the measured attack (held-out MSE per dimension ± mse_stderr) or "
    "the exact MMSE of this encoder (Monte Carlo over the closed-form posterior); margin = mse − bound_mse.")


def _floats(s):
    return [float(v) for v in str(s).split(",") if v.strip()]


def _verify(args):
    import torch
    import theory.bounds as tb
    from ..defenses import CEM, cem_objective, make_defense
    from ..experiments import entropy_vs_mse, plot_synthetic_bounds, synthetic_bounds, synthetic_margin_rows

    sec = Section("defenses", "Defenses and CEM (objective, fast route, rigorous bounds vs attacks)",
                  description=__doc__.split("\n\n")[1])
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    for _ in range(20):
        k, d = int(rng.integers(1, 6)), int(rng.integers(1, 8))
        w = rng.dirichlet(np.ones(k))
        a = rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) / d
        b = rng.normal(size=(d, d))
        P = b @ b.T / d + 0.1 * np.eye(d)
        got = float(cem_objective(torch.tensor(w), torch.tensor(covs), torch.tensor(P)))
        worst = max(worst, abs(got - tb.gmm_mutual_information_bound(w, covs, P)))
    sec.add("cem_objective = Thm 2 sum (theory)", "20 random mixtures, float64", worst, 1e-8, 1e-8 - worst,
            worst <= 1e-8)

    # low-rank vs dense per-batch route
    g = torch.Generator().manual_seed(args.seed)
    n, d = 400, 24
    y = torch.arange(n) % 4
    z = torch.randn(4, d, generator=g, dtype=torch.float64)[y] * 2 + \
        torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64) * 0.2

    class _M:
        defenses = [make_defense("noise", sigma=0.3)]
    rel = 0.0
    routes = [CEM(lam=1.0, k_per_class=2, method=m, refresh_rank=9) for m in ("lowrank", "dense")]
    for c in routes:
        c._model = _M()
        c.estimate(z, y)
    for s in range(10):
        zb, yb = z[s * 40:(s + 1) * 40], y[s * 40:(s + 1) * 40]
        la, lb = (float(c.batch_loss(zb, yb)) for c in routes)
        rel = max(rel, abs(la - lb) / abs(lb))
    sec.add("low-rank route = dense route (L_C)", "10 batches, d=24, k=8, float64", rel, 1e-9, 1e-9 - rel, rel <= 1e-9)

    # rigorous bounds vs attacks on a known mixture
    quick = bool(args.quick)
    summ = synthetic_bounds(Path(args.out) / "synthetic", sigmas=(0.3,) if quick else (0.1, 0.5), d=6, k_feat=3,
                            n_train=800 if quick else 1500, n_test=300, seed=args.seed, epochs=4 if quick else 8,
                            attack_epochs=6 if quick else 15, mc=5000, device=args.device, progress=False)
    rows = synthetic_margin_rows(summ)
    for r in rows:
        if r["rigorous"]:
            # a bound holds if the MSE is not below it by more than 3 standard errors of the MSE
            tol = 3 * r["mse_stderr"]
            sec.add(f"{r['against']} MSE >= Thm1+{r['bound']} bound", f"mixture d=6, σ={r['sigma']}",
                    r["mse"], r["bound_mse"], r["margin"] + tol, r["margin"] + tol >= 0,
                    note="margin includes 3 s.e. of the measured MSE")
    sec.tables["synthetic mixture: bounds vs exact MMSE and attacks"] = [
        {**r, "rigorous": "yes" if r["rigorous"] else "no"} for r in rows]
    sec.table_notes["synthetic mixture: bounds vs exact MMSE and attacks"] = SYNTHETIC_NOTE
    sec.figures.append(plot_synthetic_bounds(summ, Path(args.out) / "synthetic_bounds.png"))

    # a small CEM experiment on digits: CEM raises the H(x|z) estimate it maximises
    lams = (0.0, 0.01) if quick else (0.0, 0.01, 0.05)
    summ = entropy_vs_mse(Path(args.out) / ("cem-digits-quick" if quick else "cem-digits"), dataset="digits",
                          sigmas=(0.1,), lams=lams, seed=args.seed, epochs=4 if quick else 10,
                          attack_epochs=4 if quick else 10, device=args.device, progress=True)
    recs = sorted(summ["records"], key=lambda r: r["lam"])
    base = recs[0]
    for r in recs[1:]:
        sec.add("CEM raises H(x|z) estimate (Thm 2, huber)", f"digits σ=0.1, λ={r['lam']:g} vs λ=0",
                r["h_huber"], base["h_huber"], r["h_huber"] - base["h_huber"], r["h_huber"] > base["h_huber"],
                note="relative to H(x) = 0; a fitted-mixture estimate, not a certified bound")
    sec.table_notes["CEM on digits (noise σ = 0.1, one seed; H relative to H(x) = 0)"] = (
        "Split models trained with Gaussian feature noise σ = 0.1 and CEM at weight lam (0 = noise alone). "
        "h_* = H(x|z) by Theorem 2 from a per-class Gaussian mixture fitted to the features, relative to "
        "H(x) = 0 (huber = Thm 2 as printed, kl and maxent = the alternative upper bounds on I(z;ẑ)): "
        "estimates, not certified. decoder_mse = held-out per-pixel MSE of the decoder attack; "
        "mse_vs_lam0 = its ratio to the noise-only model.")
    sec.tables["CEM on digits (noise σ = 0.1, one seed; H relative to H(x) = 0)"] = [
        {"lam": r["lam"], "accuracy": r["accuracy"], "h_huber": r["h_huber"], "h_kl": r["h_kl"],
         "h_maxent": r["h_maxent"], "decoder_mse": r["mse"], "mse_vs_lam0": r["mse"] / base["mse"]} for r in recs]
    return sec


def run(args):
    from .. import experiments as E
    exp = getattr(args, "experiment", "verify")
    if exp == "verify":
        return [_verify(args)]
    out = Path(args.out)
    if exp == "entropy-vs-mse":
        summ = E.entropy_vs_mse(out, dataset=args.dataset, sigmas=_floats(args.sigmas), lams=_floats(args.lams),
                                seed=args.seed, epochs=args.epochs, attack_epochs=args.attack_epochs,
                                device=args.device)
        sec = Section("entropy-vs-mse", f"Fig. 3 analogue on {args.dataset}: decoder MSE vs H(x|z) (Thm 2, relative)")
        sec.table_notes["models"] = (
            "One split model per (σ, λ): Gaussian feature noise σ, CEM weight λ (0 = none). h_* = H(x|z) by "
            "Theorem 2 from a fitted per-class Gaussian mixture, relative to H(x) = 0 (estimates); mse = "
            "held-out decoder-attack MSE per element.")
        sec.tables["models"] = [{k: r[k] for k in ("sigma", "lam", "accuracy", "h_huber", "h_kl", "h_maxent", "mse")}
                                for r in summ["records"]]
        if "fit" in summ:
            f = summ["fit"]
            sec.add("Spearman ρ(H, MSE) >= 0.8", f"{summ['n_models']} models", summ["spearman"], 0.8,
                    summ["spearman"] - 0.8, summ["spearman"] >= 0.8)
            # informational, not pass/fail: Thm 1 predicts the slope 2/d only where it is tight
            sec.table_notes["fitted slope of log MSE on H(x|z) vs Theorem 1's 2/d"] = (
                "OLS fit of log MSE = a·H + b over the models; slope a with its 95 % t-interval [ci_low, ci_high]; "
                "where Theorem 1 is tight, log MSE = (2/d)·H − log 2πe, so a = 2/d (d = input dimension); "
                "r = correlation of H and log MSE. Informational: the bound need not be tight on real data.")
            sec.tables["fitted slope of log MSE on H(x|z) vs Theorem 1's 2/d"] = [{
                "slope": f["slope"], "ci_low": f["slope_ci"][0], "ci_high": f["slope_ci"][1],
                "two_over_d": 2.0 / summ["d"], "two_over_d_in_ci": summ["two_over_d_in_ci"], "r": f["r"],
                "n_models": f["n"]}]
            sec.figures.append(E.plot_entropy_vs_mse(summ, out / "entropy_vs_mse.png"))
        sec.data["summary"] = {k: v for k, v in summ.items() if k != "records"}
        return [sec]
    if exp == "synthetic":
        summ = E.synthetic_bounds(out, sigmas=_floats(args.sigmas), seed=args.seed, epochs=args.epochs,
                                  attack_epochs=args.attack_epochs, device=args.device)
        sec = Section("synthetic", "Known mixture, linear encoder: rigorous bounds vs exact MMSE and attacks")
        rows = E.synthetic_margin_rows(summ)
        for r in rows:
            if r["rigorous"]:
                tol = 3 * r["mse_stderr"]
                sec.add(f"{r['against']} MSE >= Thm1+{r['bound']}", f"σ={r['sigma']}", r["mse"], r["bound_mse"],
                        r["margin"] + tol, r["margin"] + tol >= 0, note="margin includes 3 s.e.")
        sec.tables["margins"] = [{**r, "rigorous": "yes" if r["rigorous"] else "no"} for r in rows]
        sec.table_notes["margins"] = SYNTHETIC_NOTE
        sec.figures.append(E.plot_synthetic_bounds(summ, out / "synthetic_bounds.png"))
        return [sec]
    # defense table
    seeds = list(range(args.seed, args.seed + args.seeds))
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    names = [b.strip() for b in args.baselines.split(",") if b.strip()]
    summ = E.defense_table(out, dataset=args.dataset, baselines=names, seeds=seeds, lam=args.lam,
                           epochs=args.epochs, attack_epochs=args.attack_epochs, attacks=attacks, device=args.device)
    sec = Section("defense-table", f"Table 1 analogue on {args.dataset}: each defense with and without CEM (λ={args.lam})",
                  description=f"CEM raised the held-out decoder MSE at accuracy within 1 point for "
                              f"{summ['cem_helps_count']} of {summ['compared']} defenses.")
    sec.table_notes["defense table (mean and 95% CI half-width over seeds)"] = (
        "Each base defense (composed with noise σ = 0.1) trained without (cem = no) and with CEM (cem = yes), "
        "one model per seed; every column is the mean over seeds with its 95 % t-interval half-width (*_ci). "
        "accuracy = test accuracy; <attack>_<split>_mse/psnr/ssim = reconstruction quality of that attack on "
        "training (train) or held-out (test) inputs. CEM 'helps' when it raises the held-out decoder MSE while "
        "the mean accuracy stays within 1 point.")
    sec.tables["defense table (mean and 95% CI half-width over seeds)"] = [
        {**r, "cem": "yes" if r["cem"] else "no"} for r in summ["rows"]]  # a bool would print as pass/FAIL
    sec.data["cem_helps_count"] = summ["cem_helps_count"]
    sec.data["verdicts"] = summ["verdicts"]
    return [sec]
