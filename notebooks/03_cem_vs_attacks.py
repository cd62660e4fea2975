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
# # 03 — Conditional entropy maximization (CEM) against inversion attacks
#
# Notebook 01 showed that the conditional entropy $H(x|z)$ of the input given the sent features
# limits every attacker (Theorem 1) and that, when the noise-free features $\hat z=f(x)$ form a
# Gaussian mixture $\sum_i\pi_i\mathcal N(\mu_i,\Sigma_i)$ and $z=\hat z+\mathcal N(0,\Sigma_p)$,
# $$H(x|z)\;\ge\;H(x)-L_C,\qquad
#   L_C=\sum_i\pi_i\Big(-\log\pi_i+\tfrac12\log\frac{|\Sigma_i+\Sigma_p|}{|\Sigma_p|}\Big)
#   \quad\text{(Theorem 2, Eq. 3 / Eq. 7).}$$
# The CEM paper (Xia et al., CVPR 2025) turns this into a training objective — **Algorithm 1**:
#
# * once per epoch, fit a mixture to the features of the whole training set (line 5; here
#   3 components per class, fitted by EM);
# * per batch, assign each feature vector to the nearest mean of its class and update the
#   weights (**Eq. 5**) $\pi_j\leftarrow(\pi_j(N-N_b)+n_j)/N$ and covariances (**Eq. 6**)
#   $\Sigma_j\leftarrow(1-\tfrac{n_j}{\pi_jN})\Sigma_j+\tfrac{n_j}{\pi_jN}\Delta\Sigma_j$;
# * compute $L_C$ (**Eq. 7**) and minimise $L_D+\lambda L_C$ (**Eq. 8**), where $L_D$ is the loss of
#   the defense CEM is plugged into (here: cross-entropy under Gaussian noise).
#
# Minimising $L_C$ pushes the Theorem-2 lower bound on $H(x|z)$ up, so every attacker's MSE floor up.
# We train a small split network on the 8×8 `digits` with the `noise` defense, and with
# `noise` + `cem`; attack both with a decoder (the learning-based attack of the paper's supp. §9);
# compare accuracy, MSE, PSNR and SSIM; measure $H(x|z)$ by Theorem 2; and look at the
# $H(x|z)$–MSE relation over a noise sweep (the paper's Fig. 3). Everything uses the public API of
# `empirics` and `theory`. Set `INVLIMITS_TINY=1` for a fast run (CI); figures go to
# `$INVLIMITS_NB_OUT` (default `runs/notebooks`).

# %%
import math
import os
import sys
import time
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")  # headless when run as a script
import matplotlib.pyplot as plt
import numpy as np
import torch

import theory
from empirics import data, metrics
from empirics.attacks import DecoderAttack
from empirics.defenses import make_defense
from empirics.experiments import conditional_entropy, fit_log_linear, spearman
from empirics.models import make_model
from empirics.training import evaluate, train

TINY = os.environ.get("INVLIMITS_TINY", "0") == "1"
OUT = Path(os.environ.get("INVLIMITS_NB_OUT", "runs/notebooks")) / "03_cem_vs_attacks"
OUT.mkdir(parents=True, exist_ok=True)
DEVICE = "auto"                                # CUDA when available, else CPU
N_TRAIN = 500 if TINY else None                # training images (None: all 1347)
N_TEST = 250 if TINY else None                 # held-out images the attacks are scored on (None: all 450)
EPOCHS = 10 if TINY else 30                    # training epochs of encoder + head
ATT_EPOCHS = 6 if TINY else 30                 # training epochs of each decoder attack
SIGMA = 0.1                                    # noise defense: z = f(x) + N(0, σ² I)
LAM = 0.01 if TINY else 0.03                   # CEM λ (Eq. 8) — see the note in section 2
SWEEP = (0.03, 0.1, 0.3, 1.0) if TINY else (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
K_SE = 4.0                                     # "clearly different" = more than 4 standard errors apart
T0 = time.perf_counter()
print(f"TINY={TINY}, figures -> {OUT}")


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print("saved", path)
    if "ipykernel" in sys.modules:
        plt.show()          # inline in Jupyter
    else:
        plt.close(fig)


# %% [markdown]
# ## 1. Data and the split model
#
# `digits` are scikit-learn's 1797 8×8 handwritten digits scaled to $[0,1]$, so $d=64$ input
# dimensions. The `digits` preset is a two-convolution client encoder ending in a sigmoid and a
# small convolutional server head; we narrow it (4 feature channels, so $\hat z$ has
# $4\times8\times8=256$ dimensions) to keep the run short.

# %%
split = data.digits(seed=0)
train_set = split.train if N_TRAIN is None else split.train.subset(np.arange(N_TRAIN))
test_set = split.test if N_TEST is None else split.test.subset(np.arange(N_TEST))
d = int(np.prod(split.input_shape))
print(f"train {len(train_set)}, held out {len(test_set)}, input shape {split.input_shape} (d = {d})")


def new_model():
    return make_model("digits", num_classes=split.num_classes, bottleneck=4, hidden=16, seed=0)


print("feature shape:", new_model().feature_shape())

# %% [markdown]
# ## 2. Train with `noise`, and with `noise` + `cem`
#
# Both models start from the same weights and see the same batches (`seed=0`); the only difference
# is the extra loss $\lambda L_C$. **On λ:** $L_C$ is a sum over all feature dimensions of log-ratios
# of determinants, so its size — and the λ that balances it against cross-entropy — depends on the
# feature dimension and on σ (in whitened coordinates $\tilde\Sigma_i=\Sigma_i/\sigma^2$). The paper's
# λ = 16 is for CIFAR-10 with σ = 0.025. On this small model (256 feature dimensions, σ = 0.1) the
# useful window is narrow, and we measured it (seed 0, decoder attack on held-out images):
#
# * tiny run (500 images, 10 epochs): λ ≥ 0.02 collapses the features — accuracy at chance, 0.096;
#   λ = 0.01 raises the attack MSE at a clear cost in accuracy (the numbers below);
# * full run (1347 images, 30 epochs): λ = 0.01 has no measurable effect (MSE 0.0061 vs 0.0063),
#   λ = 0.03 raises the MSE from 0.0063 to 0.0077 at accuracy 0.949 vs 0.962, λ ≥ 0.1 collapses.
#
# So we use λ = 0.01 (tiny) and 0.03 (full) and report both sides of the trade-off.

# %%
runs = {}
for name, spec in (("noise", [("noise", {"sigma": SIGMA})]),
                   ("noise+cem", [("noise", {"sigma": SIGMA}), ("cem", {"lam": LAM, "k_per_class": 3})])):
    model = new_model()
    defs = [make_defense(n, **kw) for n, kw in spec]
    t = time.perf_counter()
    res = train(model, train_set, epochs=EPOCHS, batch_size=64, lr=3e-3, defenses=defs, seed=0,
                device=DEVICE, progress=False)
    acc = evaluate(model, test_set)["accuracy"]
    runs[name] = {"model": model, "defenses": defs, "accuracy": float(acc)}
    print(f"{name:10s} held-out accuracy {acc:.3f}   ({time.perf_counter() - t:.1f} s)")

cem = runs["noise+cem"]["defenses"][1]
print(f"L_C on the last training batch (Eq. 7, nats): {cem.last_loss:.3f}")
# the noise-only model must have learnt something (chance is 0.1) for the comparison to mean anything
assert runs["noise"]["accuracy"] > 0.5, runs["noise"]["accuracy"]

# %% [markdown]
# ## 3. Attack both with a decoder
#
# The attacker queries the deployed client with auxiliary inputs (here: the training images), sees
# the features exactly as deployed — noise included, fresh noise at every epoch — and trains a
# decoder $G:z\mapsto\hat x$ by mean squared error. With unlimited data and capacity this decoder
# approaches the posterior mean $E[x|z]$, the MMSE attacker. It is then scored on held-out images:
#
# * MSE per pixel, $\frac1d\|x-\hat x\|^2$ (± its standard error over images);
# * PSNR $=10\log_{10}(1/\text{MSE})$ dB per image (pixels in $[0,1]$), averaged;
# * SSIM (structural similarity, 1 = identical).

# %%
for name, r in runs.items():
    t = time.perf_counter()
    att = DecoderAttack(epochs=ATT_EPOCHS, width=32, n_res=1, batch_size=64)
    att.fit(r["model"], train_set, seed=0, device=DEVICE, progress=False)
    ev = att.evaluate(r["model"], test_set, seed=0)
    r.update(attack=att, **{k: ev[k] for k in ("mse", "mse_stderr", "psnr", "ssim")})
    # the same numbers straight from empirics.metrics on the reconstructions the attack produced
    x, xh = att.last_reconstruction
    xh = xh.clamp(0, 1)
    r["metrics"] = (metrics.mse(x, xh), metrics.psnr(x, xh, 1.0), metrics.ssim(x, xh, 1.0))
    print(f"{name:10s} accuracy {r['accuracy']:.3f}  MSE {ev['mse']:.4f} ± {ev['mse_stderr']:.4f}  "
          f"PSNR {ev['psnr']:.2f} dB  SSIM {ev['ssim']:.3f}   ({time.perf_counter() - t:.1f} s)")
    # float32 reconstructions vs the attack's float64 computation: agreement to ~1e-6
    assert abs(r["metrics"][1] - ev["psnr"]) < 1e-3 and abs(r["metrics"][2] - ev["ssim"]) < 1e-4

a, b = runs["noise"], runs["noise+cem"]
gap = b["mse"] - a["mse"]
se = math.hypot(a["mse_stderr"], b["mse_stderr"])
print(f"CEM raises the decoder MSE by {gap:.4f} ({gap / se:.1f} s.e.) at an accuracy change of "
      f"{b['accuracy'] - a['accuracy']:+.3f}")
# The paper's claim on this model: CEM makes the decoder attack clearly worse. With independent test
# sets a one-sided 4-s.e. margin has a false-alarm rate ~3e-5; both models are scored on the same
# images, whose errors are positively correlated, so the combined s.e. used here is conservative.
assert gap > K_SE * se, (gap, se)

# %% [markdown]
# ## 4. $H(x|z)$ by Theorem 2
#
# `conditional_entropy` encodes the training images, fits a per-class Gaussian mixture to the
# noise-free features, takes $\Sigma_p=\sigma^2I$ from the deployed `noise` defense and returns
# $H(x)-U$ for three upper bounds $U$ on $I(z;\hat z)$: `huber` (Theorem 2 as printed, $U=L_C$),
# `kl` (Kolchinsky–Tracey, never looser) and `maxent` (Gaussian with the covariance of $z$; no
# mixture assumption). **Which $H(x)$?** The true $H(x)$ of images is unknown (for these digits,
# whose pixels take 17 values, the differential entropy is even $-\infty$). The function uses
# `h_x = 0`, the entropy of the uniform law on $[0,1]^{64}$ — an *upper* bound on $H(x)$ — so the
# results are **relative** entropies: they compare models, they are not certified lower bounds
# (`guarantee: none`), and $\tfrac{1}{2\pi e}e^{2H/d}$ computed from them is not a guaranteed MSE floor.

# %%
for name, r in runs.items():
    r["H"] = conditional_entropy(r["model"], train_set)
    h = r["H"]
    print(f"{name:10s} H(x|z) - H(x) >= huber {h['huber']:8.2f}   kl {h['kl']:8.2f}   maxent {h['maxent']:8.2f} nats"
          f"   (guarantee: {h['guarantee']})")
print("assumptions:", runs["noise"]["H"]["assumptions"])
# CEM maximises exactly this bound: after training with it, the Thm-2 entropy must be higher
assert runs["noise+cem"]["H"]["huber"] > runs["noise"]["H"]["huber"]

# %% [markdown]
# ## 5. The CEM loss *is* Theorem 2's sum
#
# The defense keeps its running mixture estimate (`cem.fit`, refitted at the start of every
# epoch) in coordinates whitened by the noise, $\tilde z=\Sigma_p^{-1/2}z$, where
# $|\Sigma+\Sigma_p|/|\Sigma_p|=|\tilde\Sigma+I|$. Evaluating Eq. 7 on it with the torch loss
# `cem_objective` and with the float64 numpy reference `theory.gmm_mutual_information_bound`, in the
# whitened and in the original coordinates, must give one number (up to round-off).

# %%
from empirics.defenses.cem import cem_objective

fit = cem.fit
w = fit.weights.double() / fit.weights.double().sum()
covs = fit.covs.double()
k, dz = covs.shape[0], covs.shape[1]
lc_torch = float(cem_objective(w, covs, 1.0))
lc_theory = theory.gmm_mutual_information_bound(w.numpy(), covs.numpy(), np.eye(dz))
lc_orig = theory.gmm_mutual_information_bound(w.numpy(), SIGMA**2 * covs.numpy(), SIGMA**2 * np.eye(dz))
print(f"k = {k} components in {dz} dimensions: cem_objective {lc_torch:.10f}, "
      f"theory {lc_theory:.10f}, theory (unwhitened) {lc_orig:.10f} nats")
# both are float64 Cholesky log-determinants of 256×256 matrices: round-off ~1e-12 relative
assert abs(lc_torch - lc_theory) <= 1e-9 * max(1.0, abs(lc_theory))
assert abs(lc_orig - lc_theory) <= 1e-9 * max(1.0, abs(lc_theory))

# %% [markdown]
# ## 6. The $H(x|z)$–MSE relation over a noise sweep (Fig. 3 analogue)
#
# Theorem 1 says $\log\xi\ge\tfrac2d H(x|z)-\log 2\pi e$: on a log-MSE-versus-entropy plot every
# attacker lies above a line of slope $2/d$. The paper's Fig. 3 shows measured attack MSEs rising with
# the measured $H(x|z)$. We take the trained noise-only encoder and deploy it with several noise
# levels σ (cheaper than retraining per σ, and it isolates the channel: the encoder is fixed), train
# a fresh decoder attack for each, and fit $\log\text{MSE}=a\,H+b$ by least squares.
#
# What to expect, honestly: $H$ (Thm 2) rises monotonically with σ, and so should the MSE. The
# fitted slope $a$ need **not** equal $2/d$: the theorem is an inequality, the decoder is not the
# exact MMSE attacker, the Thm-2 entropy is itself a bound whose slack changes with σ, and at large σ
# the MSE saturates at the pixel variance while $H$ keeps growing towards $H(x)$. A slope different
# from $2/d$ says the bound is not tight along this curve — not that it is violated.

# %%
enc_model = runs["noise"]["model"]
sweep = []
for s in SWEEP:
    enc_model.defenses = [make_defense("noise", sigma=s)]       # same encoder, new deployed noise
    h = conditional_entropy(enc_model, train_set)["huber"]
    att = DecoderAttack(epochs=ATT_EPOCHS, width=32, n_res=1, batch_size=64)
    att.fit(enc_model, train_set, seed=0, device=DEVICE, progress=False)
    ev = att.evaluate(enc_model, test_set, seed=0)
    sweep.append((s, h, ev["mse"], ev["mse_stderr"]))
    print(f"σ = {s:5.2f}: H(x|z) - H(x) >= {h:9.2f} nats   decoder MSE {ev['mse']:.4f} ± {ev['mse_stderr']:.4f}"
          f"   relative Thm-1 value {theory.mse_lower_bound(h, d):.4f}")
enc_model.defenses = runs["noise"]["defenses"]                 # restore the trained deployment
sw = np.array(sweep)
fitres = fit_log_linear(sw[:, 1], sw[:, 2])
rho = spearman(sw[:, 1], sw[:, 2])
var_x = float(test_set.x.double().var(0).mean())
print(f"fit log MSE = a H + b: a = {fitres['slope']:.4g}, 95% CI [{fitres['slope_ci'][0]:.4g}, "
      f"{fitres['slope_ci'][1]:.4g}]; 2/d = {2 / d:.4g}; Spearman rho(H, MSE) = {rho:.2f}; "
      f"mean pixel variance (MSE of guessing the mean) = {var_x:.4f}")
print("2/d inside the CI:", fitres["slope_ci"][0] <= 2 / d <= fitres["slope_ci"][1])
# the Thm-2 entropy of a fixed encoder is monotone in σ (U shrinks as the noise grows)
assert np.all(np.diff(sw[:, 1]) > 0), sw[:, 1]
# more entropy, more error: with σ spread by factors >= 3 the ranks agree (rho = 0.8 allows one swap)
assert rho >= 0.8, rho

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.errorbar(sw[:, 1], sw[:, 2], yerr=2 * sw[:, 3], fmt="o", label="decoder attack (±2 s.e.)")
for s, h, m, _ in sweep:
    ax.annotate(f"σ={s:g}", (h, m), textcoords="offset points", xytext=(4, -10), fontsize=7)
hh = np.linspace(sw[:, 1].min(), sw[:, 1].max(), 50)
ax.plot(hh, np.exp(fitres["slope"] * hh + fitres["intercept"]), "k-", lw=1,
        label=f"fit, slope {fitres['slope']:.3g}")
ax.plot(hh, np.exp(2 / d * hh) / (2 * math.pi * math.e), "r--", lw=1,
        label=f"Thm 1 with relative H (slope 2/d = {2 / d:.3g})")
ax.axhline(var_x, color="grey", lw=0.8, ls=":", label="pixel variance")
ax.set_yscale("log")
ax.set_xlabel("H(x|z) − H(x) by Thm 2 [nats]")
ax.set_ylabel("MSE per pixel (held out)")
ax.set_title("digits: entropy vs inversion error")
ax.legend(fontsize=7, loc="lower right")
save(fig, "entropy_vs_mse.png")

# %% [markdown]
# Reading the numbers:
#
# * Where the red line lies *above* a measured point the attacker beat the "bound": that is possible
#   because the entropy is relative to $H(x)=0$, which overstates the true $H(x)$. The true line is
#   lower by the unknown factor $e^{2(H(x)-0)/d}$; the theorems certify nothing here without a lower
#   bound on $H(x)$ (notebook 04 and `certifiable_mse` make this quantitative).
# * The rank correlation is the robust part of Fig. 3: more Theorem-2 entropy, more error.
# * The slope is not. With a handful of σ values (four in the CI run) its confidence interval is
#   wide, so "2/d lies inside the CI" is weak evidence of anything; the points bend (the MSE
#   flattens towards the pixel variance as σ grows), so a straight line is only a summary. Agreement
#   of the slope with 2/d would *not* show that Theorem 1 is tight (the offset is unknown), and
#   disagreement would not contradict it.
# * The sweep varies σ with the encoder fixed; the paper's Fig. 3 retrains per (σ, λ) —
#   `empirics.experiments.entropy_vs_mse` does that, at a higher cost.

# %% [markdown]
# ## 7. What the attacker sees
#
# Held-out digits (top), the decoder's reconstruction against the noise-only model (middle) and
# against the noise + CEM model (bottom).

# %%
n_show = 8
xs = test_set.x[:n_show]
rows = [("original", xs)]
for name, r in runs.items():
    g = torch.Generator(device=next(r["model"].parameters()).device).manual_seed(1)
    obs = r["attack"].observe(r["model"], xs, generator=g)
    rows.append((f"{name}\nMSE {r['mse']:.3f}", r["attack"].reconstruct(obs).clamp(0, 1).cpu()))
fig, axes = plt.subplots(len(rows), n_show, figsize=(1.1 * n_show, 1.2 * len(rows)))
for i, (label, imgs) in enumerate(rows):
    for j in range(n_show):
        ax = axes[i, j]
        ax.imshow(imgs[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[i, 0].set_ylabel(label, fontsize=7)
fig.suptitle(f"decoder inversion, σ = {SIGMA}, CEM λ = {LAM}", fontsize=9)
save(fig, "reconstructions.png")

print(f"notebook 03 done in {time.perf_counter() - T0:.1f} s")
