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
# measurements *and* bounds, and says which of them are guaranteed **for the channel as deployed**:
#
# 1. trains your encoder with a small server head under the noise — or checks a trained encoder
#    as given (`--weights`, or pass the module);
# 2. attacks it from one draw of the deployed features: a decoder trained on auxiliary data, a
#    per-sample optimization attack and — whenever the posterior is known — `bayes`, the exact
#    posterior mean;
# 3. computes the Theorem 1 + 2 floors (CEM paper), Cramér–Rao and van Trees, each with its
#    `guarantee`: `deterministic` (exact quantities, proved inequalities), `confidence` (holds with
#    probability ≥ 1 − α from Monte-Carlo limits) or `none` (an estimate) — never mixed;
# 4. tests every attack against every bound (one-sided, family-wise 0.1 %): only a significant
#    violation of a guaranteed floor is a bug.
#
# Then we verify a certificate by hand on a case where the truth is known, check an encoder trained
# in a plain PyTorch loop under a prior of our own, and finally use the package's public hypothesis
# strategies (`theory.strategies`) to property-test a bound *you* propose — one right, one subtly
# wrong, which hypothesis falsifies. Set `INVLIMITS_TINY=1` for a fast run (CI); outputs go to
# `$INVLIMITS_NB_OUT` (default `runs/notebooks`).

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
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import theory
from theory.strategies import gaussian_mixtures, linear_gaussian_channels, spd_matrices
from empirics.experiments import check_defense, exact_affine_map, load_dataset, load_factory

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


def show_comparisons(res):
    print(f"{'attack':13s} {'bound':30s} {'guarantee':13s} {'difference':>11s} {'s.e.':>9s} {'z':>8s}  status")
    for r in res.comparisons:
        print(f"{r['attack']:13s} {r['bound']:30s} {r['guarantee']:13s} {r['difference']:11.3g} "
              f"{r['stderr']:9.2g} {r['z']:8.2f}  {r['status']}")


# %% [markdown]
# ## 1. Your encoder, as a factory in a module
#
# `check_defense` takes a zero-argument function returning a `torch.nn.Module` (lazy layers are
# fine: they are materialised with one batch), or a module instance. On the command line it is
# named `MODULE:FUNCTION`, where `MODULE` is an importable dotted name or a path to a `.py` file.
# **This imports and runs your code** — point it only at code you trust. The output must be a
# floating-point tensor with one row per input; anything else is refused with one line. We write a
# tiny module with two encoders: a linear map for the 16-dimensional `synthetic-mixture` vectors
# and a strided convolution for the 8×8 `digits`.

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
# which writes `results.json`, `report.md` (headed by the verdict), a figure and the run's record
# under `DIR/records` (an identical rerun reuses it). The library call returns the same fields.

# %%
spec = f"{module_path}:conv_encoder"
print("CLI:", f"invlimits check-defense {spec} --dataset digits --noise 0.1 --out runs/check_digits")
t = time.perf_counter()
res = check_defense(spec, dataset="digits", noise=0.1, epochs=EPOCHS, attack_epochs=ATT_EPOCHS_IMG,
                    attacks=("decoder", "optimization"), opt_steps=OPT_STEPS, fisher_samples=64, n_mc=N_MC,
                    out=OUT / "digits", seed=0)
print(f"({time.perf_counter() - t:.1f} s)   fields: {sorted(res.to_dict())}")
print(f"accuracy {res.accuracy:.3f} (held out, chance {res.chance:.3f}); "
      f"encoder trained: {res.encoder_trained}")
for a in res.attacks:
    print(f"attack {a['name']:12s} MSE {a['mse']:.4f} ± {a['mse_stderr']:.4f}  "
          f"PSNR {a.get('psnr', float('nan')):.2f} dB  SSIM {a.get('ssim', float('nan')):.3f}")
for name, b in res.bounds.items():
    val = "no finite bound" if b["value"] is None else f"{b['value']:.4f}"
    print(f"bound  {name:18s} {val}  guarantee={b['guarantee']}")
print(f"certifiable_mse {res.certifiable_mse:.4f}   (1/(2πe) = {1 / (2 * math.pi * math.e):.4f})")
show_comparisons(res)
print("warnings:", res.warnings or "none")
print("verdict:", res.verdict)

# %% [markdown]
# What each field means:
#
# * **`attacks`** — one row per attack: held-out MSE per element (± standard error over images),
#   PSNR and SSIM for images. These are *achieved* reconstruction errors: an upper bound on what the
#   best attacker can do, not a guarantee.
# * **`bounds`** — name → `{value, stderr, guarantee, confidence, finite, assumptions}`, each an MSE
#   floor per element:
#   * `thm1+thm2_huber` / `_kl` / `_maxent`: Theorem 1 applied to $H(x|z)\ge H(x)-U$ with the three
#     upper bounds $U$ on $I(z;\hat z)$ (Theorem 2 as printed, Kolchinsky–Tracey, max-entropy);
#   * `cramer_rao_dfil`: $E_x[1/\mathrm{dFIL}(x)]$, valid for *unbiased* attackers only — trained
#     decoders are biased and may go below it;
#   * `guarantee` is `deterministic` or `confidence` (with `confidence` = 1 − α) only when every
#     assumption holds for the deployed channel. On real data none can: the features are *modelled*
#     by a fitted mixture and $H(x)$ is unknown, so it is replaced by an upper bound (0 for $[0,1]^d$
#     data) — the value is an estimate (`none`), and `assumptions` says so. A `value` of `None` means
#     "no finite bound", with the reason.
# * **`comparisons`** — every attack against every finite bound as a one-sided test of
#   "expected MSE ≥ bound": `difference`, its standard error (paired over the same observations
#   where the bound has a value per input), `z`, and `status` ∈ {`consistent`, `inconclusive`,
#   `violated`} at family-wise level 0.1 % over all comparisons. Below an *estimate* a violation
#   means the estimate's assumptions fail; below a *guaranteed* floor it would be a bug (exit status 1).
# * **`certifiable_mse`** — the largest MSE floor Theorems 1+2 could certify at all:
#   $\frac{1}{2\pi e}e^{2(H_{\max}(x)-U)/d}\le\frac1{2\pi e}\approx0.0585$ for data in $[0,1]^d$.
# * **`warnings`** — a stochastic encoder, accuracy near chance, a failed attack, a piecewise-constant
#   or non-differentiable encoder.
# * **`verdict`** — the sentence printed on the terminal and at the head of `report.md`.

# %%
b = res.bounds
# The KL bound on I(z; ẑ) is never looser than Huber's (Thm 2), so its MSE floor is never lower;
# both come from one mixture fit, in float64: only round-off separates equal values.
assert b["thm1+thm2_kl"]["value"] >= b["thm1+thm2_huber"]["value"] * (1 - 1e-9)
# the cap: H(x) <= 0 on [0, 1]^64 and U >= 0, so at most 1/(2πe)
assert 0 < res.certifiable_mse <= 1 / (2 * math.pi * math.e) * (1 + 1e-12)
# On digits H(x) is replaced by its upper bound 0, so the best estimate equals the cap from the same fit.
best_thm = max(b[f"thm1+thm2_{m}"]["value"] for m in ("huber", "kl", "maxent"))
assert abs(res.certifiable_mse - best_thm) <= 1e-9 * best_thm, (res.certifiable_mse, best_thm)
assert all(v["guarantee"] == "none" for v in b.values())  # real data: estimates only, and labelled so
assert res.bug is False and res.verdict.startswith("no certificate")
assert all({"attack", "bound", "difference", "stderr", "z", "status"} <= set(r) for r in res.comparisons)
saved = json.loads((OUT / "digits" / "check_defense.json").read_text())
assert saved["verdict"] == res.verdict
print("written:", OUT / "digits" / "check_defense.json")

# %% [markdown]
# ## 3. A known mixture: where a bound becomes a certificate
#
# On `synthetic-mixture`, $x\sim\sum_{i=1}^3 w_i\mathcal N(\mu_i,\Sigma_i)$ in $d=16$ with the
# mixture known (`meta["gmm"]`). With the *linear* encoder $\hat z=Ax+b$ the features are
# **exactly** the mixture $\sum_i w_i\mathcal N(A\mu_i+b, A\Sigma_iA^\top)$ — for the float64 map.
# `check_defense` reads $A$ and $b$ from the parameters in float64 (`exact_affine_map`), bounds
# how far the deployed *float32* encoder departs from that map ($\eta^2=E\|\delta/\sigma\|^2$) and
# pays for the departure in the bound ($\eta\sqrt{\operatorname{Tr}J}+\eta^2/2$ nats; the lemma is in
# `empirics/experiments/affine.py`), so its Thm 1 + 2 floors are certificates for every attacker of
# the deployed channel — two kinds, never mixed:
#
# * `thm1+thm2_<m>.deterministic`: $H(x)$ by the max of its ELK and Chernoff-α lower bounds (closed
#   form), $\eta^2$ by a float32 rounding-error analysis of the Linear layer — nothing random;
# * `thm1+thm2_<m>.confidence`: $H(x)$ by a lower confidence limit from the Monte-Carlo draws (it
#   holds with probability ≥ 0.999, without the CLT) — tighter when the components overlap.
#
# And since the posterior is known, the exact Bayes attacker runs.
#
# We pass the encoder as a module instance with `train_encoder=True` (a module is otherwise checked
# as given), so we can read the trained $A$ afterwards and redo the float64 computation by hand.

# %%
enc = load_factory(f"{module_path}:linear_encoder")()
sigma = 0.5
t = time.perf_counter()
res_s = check_defense(enc, dataset="synthetic-mixture", noise=sigma, train_encoder=True, epochs=EPOCHS_SYN,
                      attack_epochs=ATT_EPOCHS, attacks=("decoder", "optimization"), opt_steps=OPT_STEPS,
                      fisher_samples=64, n_mc=N_MC, seed=0)
print(f"({time.perf_counter() - t:.1f} s) accuracy {res_s.accuracy:.3f}")
print("verdict:", res_s.verdict)

gmm = load_dataset("synthetic-mixture", seed=0).meta["gmm"]       # the dataset check_defense used
d = gmm.dim
A = enc.weight.detach().double().cpu().numpy()
P = sigma**2 * np.eye(A.shape[0])
rng = np.random.default_rng(4)
hx = theory.mixture_entropy_mc(gmm, N_MC, rng)                    # an estimate: never a floor
hx_lower = theory.mixture_entropy_bounds(gmm, alphas="grid", which="lower")["lower"]   # a proved bound
ub = theory.affine_mutual_information_upper_bounds(gmm, A, P)
hand = {m: theory.mse_lower_bound(hx_lower - ub[m], d) for m in ("huber", "kl", "maxent")}
mm = theory.mixture_mmse_mc(gmm, A, P, N_MC, rng)
mmse, mmse_se = mm.value / d, mm.stderr / d
dep = res_s.affine["departure"]
print(f"H(x) = {hx.value:.3f} ± {hx.stderr:.3f} nats (Monte Carlo) >= {hx_lower:.3f} (ELK/Chernoff, proved); "
      f"deployed departure η² = {dep['eta2']:.2g} (bounded by {res_s.affine['eta2_deterministic']:.2g})")
print(f"exact MMSE/d of the float64 channel = {mmse:.4f} ± {mmse_se:.4f}")
for m, v in hand.items():
    cd, cc = res_s.bounds[f"thm1+thm2_{m}.deterministic"], res_s.bounds[f"thm1+thm2_{m}.confidence"]
    print(f"float64 Thm1+Thm2 ({m:6s}) floor {v:.4f}    check_defense: {cd['value']:.4f} (deterministic), "
          f"{cc['value']:.4f} (confidence {cc['confidence']:g})")
for a in res_s.attacks:
    print(f"attack {a['name']:12s} MSE {a['mse']:.4f} ± {a['mse_stderr']:.4f}")

# The float32 read-out is exact: A is the trained parameter, in float64.
amap, _ = exact_affine_map(enc, (16,), load_dataset("synthetic-mixture").test.x)
assert np.array_equal(amap.A, A)
# check_defense's deterministic certificate = the by-hand float64 floor lowered by the departure's
# price: log(floor_cd / floor_hand) = −2·correction/d (the float64 allowances and the input rounding
# ~1e-7 are below the tolerance); the confidence floor is the same with H(x)'s confidence limit.
ce = res_s.conditional_entropy
for m, v in hand.items():
    cd = res_s.bounds[f"thm1+thm2_{m}.deterministic"]
    assert cd["guarantee"] == "deterministic", m
    want = -2 * ce["departure_nats"]["deterministic"] / d
    assert abs(math.log(cd["value"] / v) - want) < 1e-4, (m, cd["value"], v)
    cc = res_s.bounds[f"thm1+thm2_{m}.confidence"]
    want = 2 * (ce["h_x_confidence"] - hx_lower - ce["departure_nats"]["confidence"]) / d
    assert cc["guarantee"] == "confidence" and abs(math.log(cc["value"] / v) - want) < 1e-4, m
# Every certified floor lies below the exact MMSE (4 s.e. of the MMSE estimate: false alarm ~3e-5),
for m in hand:
    for kind in ("deterministic", "confidence"):
        assert res_s.bounds[f"thm1+thm2_{m}.{kind}"]["value"] <= mmse + K_SE * mmse_se, (m, kind)
# no attack beats the MMSE, and the exact Bayes attack reaches it (both within 4 combined s.e.).
for a in res_s.attacks:
    assert a["mse"] >= mmse - K_SE * math.hypot(a["mse_stderr"], mmse_se), (a, mmse)
bayes = next(a for a in res_s.attacks if a["name"] == "bayes")
assert abs(bayes["mse"] - mmse) <= K_SE * math.hypot(bayes["mse_stderr"], mmse_se)
assert res_s.verdict.startswith("certified") and res_s.bug is False

fig, ax = plt.subplots(figsize=(5.5, 3.2))
names = [a["name"] for a in res_s.attacks] + ["exact MMSE"]
vals = [a["mse"] for a in res_s.attacks] + [mmse]
ax.bar(names, vals, color=["tab:blue"] * len(res_s.attacks) + ["tab:green"])
for i, m in enumerate(hand):
    ax.axhline(res_s.bounds[f"thm1+thm2_{m}.deterministic"]["value"], color=f"C{i + 1}", ls="-", lw=1,
               label=f"Thm1+2 ({m}), deterministic")
    ax.axhline(res_s.bounds[f"thm1+thm2_{m}.confidence"]["value"], color=f"C{i + 1}", ls="--", lw=1,
               label=f"Thm1+2 ({m}), confidence 0.999")
ax.axhline(res_s.bounds["cramer_rao_dfil"]["value"], color="k", ls=":", lw=1, label="Cramér–Rao (unbiased only)")
ax.set_ylabel("MSE per element")
ax.set_title(f"synthetic mixture, linear encoder, σ = {sigma}")
ax.legend(fontsize=7)
save(fig, "synthetic_bounds.png")

# %% [markdown]
# ### Why the map is read from the parameters, in float64
#
# An audit found the earlier check certifying a false bound: it read $A$ off the float32 encoder as
# $f(e_i)-f(0)$. With weight $10.45\cdot2^{-10}$ and bias 8192, float32 keeps only $2^{-10}$ of
# resolution next to 8192, so the read-off $A_{ii}$ was $2^{-10}=0.00977$, 4 % below the truth —
# and the floor then called "rigorous" sat above what the exact Bayes attacker reaches. Read in float64
# from the parameters, the ratio to the truth is exactly 1; the deployed float32 rounding (a tenth of
# the noise here) is paid for in the bound, and `bayes` stays above every certificate.

# %%
big = nn.Linear(16, 16)
with torch.no_grad():
    big.weight.copy_(10.45 * 2.0**-10 * torch.eye(16))
    big.bias.fill_(8192.0)
with torch.no_grad():
    read_off = float(big(torch.eye(16))[0, 0] - big(torch.zeros(1, 16))[0, 0])
res_b = check_defense(big, dataset="synthetic-mixture", noise=3e-3, attacks=(), head=False, n_mc=N_MC)
amap_b, _ = exact_affine_map(big, (16,), load_dataset("synthetic-mixture").test.x)
w32 = float(big.weight.detach()[0, 0])
print(f"float32 read-off A_ii = {read_off} (ratio {read_off / w32:.4f});  float64 A_ii ratio {amap_b.A[0, 0] / w32}")
bayes_b = res_b.attacks[0]
print(f"bayes on the deployed channel: {bayes_b['mse']:.5f} ± {bayes_b['mse_stderr']:.5f}")
for k, v in res_b.bounds.items():
    print(f"  {k:30s} {v['value']:.5f}  guarantee={v['guarantee']}")
assert amap_b.A[0, 0] == w32 and abs(read_off / w32 - 0.957) < 1e-3
assert all(v["value"] < bayes_b["mse"] for v in res_b.bounds.values() if v["guarantee"] != "none")

# %% [markdown]
# ## 4. A trained model, as deployed, under a prior of your own
#
# A researcher with an already trained encoder checks it *without retraining it*: on the command
# line `--weights PATH` loads a state_dict into the factory's module; in the library, pass the
# module. `dataset=` also takes a `theory.GaussianMixture`: samples are drawn from it (labels =
# component), so you can certify an encoder under a prior of your choosing. Here a 4-d, two-component
# prior and an encoder trained in a plain PyTorch loop that knows nothing of this package.

# %%
my_prior = theory.GaussianMixture([0.4, 0.6], [[-1.5, 0.0, 1.0, 0.0], [1.5, 0.5, -1.0, 0.0]],
                                  [np.eye(4), np.diag([2.0, 0.5, 1.0, 0.3])])
xs, ys = my_prior.sample(800, np.random.default_rng(7), return_labels=True)
xs, ys = torch.tensor(xs, dtype=torch.float32), torch.tensor(ys)
torch.manual_seed(0)
mine, head = nn.Linear(4, 2), nn.Linear(2, 2)
opt = torch.optim.Adam([*mine.parameters(), *head.parameters()], lr=0.05)
for _ in range(100):                                       # a plain training loop
    loss = nn.functional.cross_entropy(head(mine(xs) + 0.3 * torch.randn(len(xs), 2)), ys)
    opt.zero_grad()
    loss.backward()
    opt.step()
before = {k: v.clone() for k, v in mine.state_dict().items()}
res_m = check_defense(mine, dataset=my_prior, noise=0.3, epochs=EPOCHS_SYN, attack_epochs=ATT_EPOCHS,
                      attacks=("decoder",), n_train=1000, n_test=500, n_mc=N_MC)
print(f"encoder trained by check_defense: {res_m.encoder_trained}; head accuracy {res_m.accuracy:.3f}")
show_comparisons(res_m)
print("verdict:", res_m.verdict)
assert res_m.encoder_trained is False
assert all(torch.equal(before[k], v) for k, v in mine.state_dict().items())   # checked as given
assert res_m.dataset == "gaussian-mixture" and res_m.verdict.startswith("certified")

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
