# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 — Check your own defense against the theoretical limits
#
# You have a client encoder $f$ and you add Gaussian noise, $z=f(x)+\mathcal N(0,\sigma^2I)$. Is it
# private? `empirics.experiments.check_defense` (CLI: `invlimits check-defense`) answers with
# measurements *and* bounds, and says which of them are guaranteed:
#
# 1. trains your encoder with a small server head under the noise;
# 2. attacks it — a decoder trained on auxiliary data and a per-sample optimization attack — on
#    held-out inputs;
# 3. computes the Theorem 1 + 2 MSE bounds (CEM paper) from a Gaussian-mixture model of the
#    features, the Cramér–Rao bound from the Fisher information, and the largest MSE the theorems
#    could ever certify.
#
# Then we verify a **rigorous** bound by hand on a case where the truth is known, and finally use the
# package's public hypothesis strategies (`theory.strategies`) to property-test a bound *you*
# propose — one right, one subtly wrong, which hypothesis falsifies. Set `INVLIMITS_TINY=1` for a
# fast run (CI); outputs go to `$INVLIMITS_NB_OUT` (default `runs/notebooks`).

# %%
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")  # headless when run as a script
import matplotlib.pyplot as plt
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import theory
from theory.strategies import gaussian_mixtures, linear_gaussian_channels, spd_matrices
from empirics.experiments import check_defense, load_dataset, load_factory

TINY = os.environ.get("INVLIMITS_TINY", "0") == "1"
OUT = Path(os.environ.get("INVLIMITS_NB_OUT", "runs/notebooks")) / "04_check_your_defense"
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = 6 if TINY else 15                 # encoder + head training epochs on digits
EPOCHS_SYN = 2 if TINY else 15             # ... on synthetic-mixture (3000 samples; a linear map learns fast)
ATT_EPOCHS = 4 if TINY else 20             # decoder-attack epochs (synthetic: a small MLP decoder)
ATT_EPOCHS_IMG = 3 if TINY else 20         # decoder-attack epochs on digits (a convolutional decoder, slower)
OPT_STEPS = 40 if TINY else 200            # optimization-attack steps
N_MC = 5_000 if TINY else 40_000           # Monte-Carlo samples for H(x) and the exact MMSE
N_EXAMPLES = 60 if TINY else 400           # hypothesis examples per property
K_SE = 4.0                                 # Monte-Carlo comparisons allow 4 standard errors
T0 = time.perf_counter()
print(f"TINY={TINY}, outputs -> {OUT}")


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print("saved", path)
    if "ipykernel" in sys.modules:
        plt.show()          # inline in Jupyter
    else:
        plt.close(fig)


# %% [markdown]
# ## 1. Your encoder, as a factory in a module
#
# `check_defense` takes a zero-argument function returning a `torch.nn.Module` (lazy layers are
# fine: they are materialised with one batch). On the command line it is named `MODULE:FUNCTION`,
# where `MODULE` is an importable dotted name or a path to a `.py` file. **This imports and runs your
# code** — point it only at code you trust. We write a tiny module with two encoders:
# a linear map for the 16-dimensional `synthetic-mixture` vectors and a strided convolution for
# the 8×8 `digits`.

# %%
module_path = OUT / "my_defense.py"
module_path.write_text(textwrap.dedent('''
    """My client encoders (a user's module: check_defense imports and runs it)."""
    from torch import nn


    def linear_encoder():
        """16-d vectors -> 4 features: z_hat = A x + b."""
        return nn.Linear(16, 4)


    def conv_encoder():
        """8x8 images -> 4 x 4 x 4 = 64 features in (0, 1)."""
        return nn.Sequential(nn.LazyConv2d(4, 3, stride=2, padding=1), nn.Sigmoid())
'''))
print(module_path.read_text())

# %% [markdown]
# ## 2. `check_defense` on digits, end to end
#
# The same call as the command line
#
# ```
# invlimits check-defense PATH/my_defense.py:conv_encoder --dataset digits --noise 0.1 --out DIR
# ```
#
# which writes `results.json` (top-level `attacks`, `bounds`, `certifiable_mse`, `verdict`,
# `accuracy`), `report.md` and a figure under `DIR` (not run here). The library call below returns
# those fields and more (`conditional_entropy`, `dfil`, `seconds`) as a dict.

# %%
spec = f"{module_path}:conv_encoder"
print("CLI:", f"invlimits check-defense {spec} --dataset digits --noise 0.1 --out runs/check_digits")
t = time.perf_counter()
res = check_defense(spec, dataset="digits", noise=0.1, epochs=EPOCHS, attack_epochs=ATT_EPOCHS_IMG,
                    attacks=("decoder", "optimization"), opt_steps=OPT_STEPS, fisher_samples=64,
                    out=OUT / "digits", seed=0)
print(f"({time.perf_counter() - t:.1f} s)   fields: {sorted(res)}")
print(f"accuracy {res['accuracy']:.3f} (held out, chance 0.1)")
for a in res["attacks"]:
    print(f"attack {a['name']:12s} MSE {a['mse']:.4f} ± {a['mse_stderr']:.4f}  PSNR {a.get('psnr', float('nan')):.2f} dB"
          f"  SSIM {a.get('ssim', float('nan')):.3f}")
for name, b in res["bounds"].items():
    print(f"bound  {name:18s} {b['value']:.4f}  rigorous={b['rigorous']}")
print(f"certifiable_mse {res['certifiable_mse']:.4f}   (1/(2πe) = {1 / (2 * math.pi * math.e):.4f})")
print("verdict:", res["verdict"])

# %% [markdown]
# What each field means:
#
# * **`attacks`** — one row per attack: held-out MSE per element (± standard error over images),
#   PSNR and SSIM for images. These are *achieved* reconstruction errors: an upper bound on what the
#   best attacker can do, not a guarantee.
# * **`bounds`** — name → `{value, rigorous, assumptions}`, each an MSE floor per element:
#   * `thm1+thm2_huber` / `_kl` / `_maxent`: Theorem 1 applied to $H(x|z)\ge H(x)-U$ with the three
#     upper bounds $U$ on $I(z;\hat z)$ (Theorem 2 as printed, Kolchinsky–Tracey, max-entropy);
#   * `cramer_rao_dfil`: $E_x[1/\mathrm{dFIL}(x)]$, valid for *unbiased* attackers only — trained
#     decoders are biased and may go below it.
#   * `rigorous` is `True` only when every assumption holds exactly. On real data it cannot: the
#     features are *modelled* by a fitted mixture and $H(x)$ is unknown, so it is replaced by an
#     upper bound (0 for $[0,1]^d$ data) — the value is an estimate, and `assumptions` says so.
# * **`certifiable_mse`** — the largest MSE floor Theorems 1+2 could certify at all:
#   $\frac{1}{2\pi e}e^{2(H_{\max}(x)-U)/d}\le\frac1{2\pi e}\approx0.0585$ for data in $[0,1]^d$.
#   A privacy claim above this cap is not backed by these theorems, whatever the defense.
# * **`verdict`** — one sentence combining the best attack, the estimate and the cap. When an attack
#   goes *below* the estimated floor the sentence says so: the estimate's assumptions failed (on
#   images mostly the replacement of $H(x)$ by its upper bound 0). With the full settings of this
#   notebook that happens — the decoder reached MSE 0.019 against an estimate of 0.044 — which is
#   why these numbers are labelled estimates and not guarantees.
# * also `conditional_entropy` (the Thm-2 entropies), `dfil` (Fisher information ± s.e.),
#   `accuracy`, `seconds`; with `out=` the dict is written as JSON.

# %%
b = res["bounds"]
# The KL bound on I(z; ẑ) is never looser than Huber's (Thm 2), so its MSE floor is never lower;
# both come from one mixture fit, in float64: only round-off separates equal values.
assert b["thm1+thm2_kl"]["value"] >= b["thm1+thm2_huber"]["value"] * (1 - 1e-9)
# the cap: H(x) <= 0 on [0, 1]^64 and U >= 0, so at most 1/(2πe)
assert 0 < res["certifiable_mse"] <= 1 / (2 * math.pi * math.e) * (1 + 1e-12)
# On digits H(x) is replaced by its upper bound 0, so the estimates equal the cap computed from the
# same fit (theory's numpy route vs the torch route: agreement to ~1e-9 relative).
best_thm = max(b[f"thm1+thm2_{m}"]["value"] for m in ("huber", "kl", "maxent"))
assert abs(res["certifiable_mse"] - best_thm) <= 1e-6 * best_thm, (res["certifiable_mse"], best_thm)
assert not any(v["rigorous"] for v in b.values())       # real data: estimates only, and labelled so
saved = json.loads((OUT / "digits" / "check_defense.json").read_text())
assert saved["verdict"] == res["verdict"]
print("written:", OUT / "digits" / "check_defense.json")

# %% [markdown]
# ## 3. A known mixture: where a bound becomes rigorous
#
# On `synthetic-mixture`, $x\sim\sum_{i=1}^3 w_i\mathcal N(\mu_i,\Sigma_i)$ in $d=16$ with the
# mixture known (`meta["gmm"]`). With the *linear* encoder $\hat z=Ax+b$ the features are **exactly**
# the mixture $\sum_i w_i\mathcal N(A\mu_i+b, A\Sigma_iA^\top)$, so Theorem 2 holds without any
# fitting, $H(x)$ is known up to Monte-Carlo error (we use its lower 3-s.e. limit) and Theorem 1
# gives a rigorous floor. The exact MMSE $E\|x-E[x|z]\|^2/d$ is computable from the closed-form
# mixture posterior (Monte Carlo ± s.e.). `check_defense` recognises this case by itself — the
# encoder is built only from affine layers (`empirics.experiments.affine_encoder_map`), so it pushes
# the known mixture through the trained map and marks its bounds `rigorous=True`. Here we redo that
# computation by hand from the trained $A$ and $b$ (we pass the encoder as a module instance so that
# we can read them afterwards) and check that the two agree.
#
# Things to look for in the output: the two floors differ only through their independent
# Monte-Carlo estimates of $H(x)$ (a floor scales as $\exp(2H/d)$); the attacks' MSEs sit above the
# exact MMSE, which sits above every rigorous floor — the order the theorems demand.

# %%
factory = load_factory(f"{module_path}:linear_encoder")
enc = factory()
sigma = 0.5
t = time.perf_counter()
res_s = check_defense(enc, dataset="synthetic-mixture", noise=sigma, epochs=EPOCHS_SYN, attack_epochs=ATT_EPOCHS,
                      attacks=("decoder", "optimization"), opt_steps=OPT_STEPS, fisher_samples=64, seed=0)
print(f"({time.perf_counter() - t:.1f} s) accuracy {res_s['accuracy']:.3f}")

gmm = load_dataset("synthetic-mixture", seed=0).meta["gmm"]       # the dataset check_defense used
d = gmm.dim
A = enc.weight.detach().double().cpu().numpy()
bias = enc.bias.detach().double().cpu().numpy()
P = sigma**2 * np.eye(A.shape[0])
rng = np.random.default_rng(4)
hx = theory.mixture_entropy_mc(gmm, N_MC, rng)
means = gmm.means @ A.T + bias
covs = np.einsum("ij,kjl,ml->kim", A, gmm.covs, A)
covs = 0.5 * (covs + covs.transpose(0, 2, 1))
ub = theory.mutual_information_upper_bounds(gmm.weights, means, covs, P)
rig = {m: theory.mse_lower_bound(hx.value - 3 * hx.stderr - ub[m], d) for m in ("huber", "kl", "maxent")}
mm = theory.mixture_mmse_mc(gmm, A, P, N_MC, rng)
mmse, mmse_se = mm.value / d, mm.stderr / d
print(f"H(x) = {hx.value:.3f} ± {hx.stderr:.3f} nats (Monte Carlo)")
print(f"exact MMSE/d = {mmse:.4f} ± {mmse_se:.4f}")
for m, v in rig.items():
    print(f"rigorous Thm1+Thm2 ({m:6s}) floor {v:.4f}    check_defense (rigorous) {res_s['bounds']['thm1+thm2_' + m]['value']:.4f}")
for a in res_s["attacks"]:
    print(f"attack {a['name']:12s} MSE {a['mse']:.4f} ± {a['mse_stderr']:.4f}")
print("verdict:", res_s["verdict"])

# check_defense marked its Thm 1+2 bounds rigorous, and they are ours up to the H(x) estimate:
# log(floor_cd / floor_ours) = 2 (H_cd − H_ours) / d with both H(x) values at their lower 3-s.e. limit
h_cd = res_s["conditional_entropy"]["h_x"]
for m, v in rig.items():
    b = res_s["bounds"]["thm1+thm2_" + m]
    assert b["rigorous"], m
    assert abs(math.log(b["value"] / v) - 2 * (h_cd - (hx.value - 3 * hx.stderr)) / d) < 1e-3, (m, b["value"], v)

# Every rigorous floor must lie below the exact MMSE (4 s.e. of the MMSE estimate: false alarm ~3e-5)
for m, v in rig.items():
    assert v <= mmse + K_SE * mmse_se, (m, v, mmse)
# and no attack can beat the MMSE: an attack's held-out MSE is a 1000-sample mean, the MMSE an
# independent Monte-Carlo mean; 4 combined s.e. allow for both.
for a in res_s["attacks"]:
    assert a["mse"] >= mmse - K_SE * math.hypot(a["mse_stderr"], mmse_se), (a, mmse)

fig, ax = plt.subplots(figsize=(5.5, 3.2))
names = [a["name"] for a in res_s["attacks"]] + ["exact MMSE"]
vals = [a["mse"] for a in res_s["attacks"]] + [mmse]
ax.bar(names, vals, color=["tab:blue", "tab:blue", "tab:green"])
for i, (m, v) in enumerate(rig.items()):
    ax.axhline(v, color=f"C{i + 1}", ls="-", lw=1, label=f"rigorous Thm1+2 ({m})")
ax.axhline(res_s["bounds"]["cramer_rao_dfil"]["value"], color="k", ls=":", lw=1, label="Cramér–Rao (unbiased only)")
ax.set_ylabel("MSE per element")
ax.set_title(f"synthetic mixture, linear encoder, σ = {sigma}")
ax.legend(fontsize=7)
save(fig, "synthetic_bounds.png")

# %% [markdown]
# ## 4. Property-test *your* bound with the public hypothesis strategies
#
# Say you propose a lower bound on the per-dimension MMSE of the linear-Gaussian channel
# $z=Ax+\mathcal N(0,\Sigma_n)$, $x\sim\mathcal N(0,\Sigma_x)$. There the truth is exact: the posterior
# covariance $P=(\Sigma_x^{-1}+A^\top\Sigma_n^{-1}A)^{-1}$ is the same for every $z$, and
# $\text{MMSE}/d=\operatorname{tr}P/d$ (`theory.linear_gaussian_mmse`). `linear_gaussian_channels()`
# draws random channels (dimension, shape of $A$, conditioning), so a `@given` test checks a bound on
# many of them and, on failure, *shrinks* to a small counterexample.
#
# * **Right:** Theorem 1 with the exact entropy, $\frac1{2\pi e}e^{2H(x|z)/d}=|P|^{1/d}$ — the
#   geometric mean of eig$(P)$, never above the arithmetic mean.
# * **Subtly wrong:** "the error is at least the posterior variance in the worst direction",
#   $\lambda_{\max}(P)$ — true when $P$ is isotropic (then all three coincide), false otherwise,
#   since the *average* of the eigenvalues is below the largest one.

# %%
def thm1_bound(A, cov_x, cov_n):
    d = cov_x.shape[0]
    return theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cov_x, cov_n), d)


def worst_direction_bound(A, cov_x, cov_n):
    return float(np.linalg.eigvalsh(theory.linear_gaussian_posterior_cov(A, cov_x, cov_n)).max())


def make_test(bound):
    failures = []

    @settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(linear_gaussian_channels())
    def test_bound_below_mmse(ch):
        A, cov_x, cov_n = ch
        d = cov_x.shape[0]
        mmse = theory.linear_gaussian_mmse(A, cov_x, cov_n) / d
        value = bound(A, cov_x, cov_n)
        if not value <= mmse * (1 + 1e-9):        # closed forms: only round-off is tolerated
            failures.append((ch, value, mmse))
            raise AssertionError(f"bound {value:.6g} > MMSE/d {mmse:.6g}")

    return test_bound_below_mmse, failures


test_right, _ = make_test(thm1_bound)
test_right()                                     # passes on every drawn channel
print(f"Theorem 1 bound: no counterexample in {N_EXAMPLES} channels")

test_wrong, failures = make_test(worst_direction_bound)
try:
    test_wrong()
    falsified = False
except AssertionError as exc:
    falsified = True
    ch, value, mmse = failures[-1]               # hypothesis replays the shrunk example last
    print("worst-direction bound FALSIFIED:", exc)
    print("minimal counterexample found by hypothesis:")
    print("  A =", np.array2string(ch.A, precision=3).replace("\n", "\n      "))
    print("  cov_x =", np.array2string(ch.cov_x, precision=3).replace("\n", "\n          "))
    print("  cov_noise =", np.array2string(ch.cov_noise, precision=3).replace("\n", "\n              "))
    print(f"  bound {value:.4f} > MMSE/d {mmse:.4f}")
assert falsified, "hypothesis should have found a channel where λmax(P) exceeds tr(P)/d"
# the counterexample is genuine: recomputed from scratch, the bound exceeds the exact MMSE/d
assert worst_direction_bound(*ch) > theory.linear_gaussian_mmse(*ch) / ch.cov_x.shape[0]

# %% [markdown]
# Hypothesis shrinks towards small, simple matrices; the counterexample it reports is typically
# the channel that reveals *nothing* ($A=0$): the posterior is the prior, the "worst direction"
# variance is the largest prior eigenvalue, while the MMSE per dimension is their average.
#
# The same strategies cover mixtures. A second property a user might want: for a Gaussian-mixture
# $\hat z$ plus noise, the Kolchinsky–Tracey upper bound on $I(z;\hat z)$ is never looser than
# Theorem 2's (Huber) sum — an exact inequality, so any violation beyond round-off is a bug.

# %%
@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(gaussian_mixtures(dim=2), spd_matrices(dim=2))
def test_kl_not_looser_than_thm2(g, noise):
    ub = theory.mutual_information_upper_bounds(g.weights, g.means, g.covs, noise)
    assert ub["kl"] <= ub["huber"] + 1e-9 * max(1.0, abs(ub["huber"]))
    # "huber" is Thm 2's sum itself (same formula, possibly different float64 round-off)
    thm2 = theory.gmm_mutual_information_bound(g.weights, g.covs, noise)
    assert abs(ub["huber"] - thm2) <= 1e-12 * max(1.0, abs(thm2))


test_kl_not_looser_than_thm2()
print(f"KL <= Thm 2 (Huber): no counterexample in {N_EXAMPLES} mixtures")
print(f"notebook 04 done in {time.perf_counter() - T0:.1f} s")
