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
# # 05 — CEM in your own training loop
#
# Notebook 03 trained with the package's `train`. Most people who would try CEM (or NoPeek, ARL,
# MixCon ...) already have a training loop. `empirics.defenses.defend` plugs the defenses into it,
# the way Opacus' `make_private` does for differential privacy: it takes *your* encoder and
# optimizer and returns
#
# * `defended` — an `nn.Module`: your encoder followed by every defense's feature transform, i.e.
#   the features **as sent to the server** (noise included; in eval mode, as deployed);
# * `defended.loss(y)` — the term to add to your loss (for CEM: $\lambda L_C$, Eq. 7–8 of the CEM
#   paper, from the features and labels of the step);
# * `defended.step()` after `optimizer.step()` and `defended.epoch_end()` after each epoch (CEM
#   re-estimates its feature mixture, Alg. 1 lines 4–5, for the next epoch).
#
# We write a plain PyTorch loop on the 8×8 `digits`, check that switching CEM off ($\lambda=0$)
# leaves the loop bit-for-bit unchanged, train with Gaussian noise alone and with noise + CEM,
# attack both with a learned decoder, and put the attack MSE beside the conditional entropy
# $H(x|z)$ estimated by Theorem 2. Set `INVLIMITS_TINY=1` for a fast run (CI).

# %%
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
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from empirics import data
from empirics.attacks import DecoderAttack
from empirics.defenses import defend
from empirics.measure import conditional_entropy

TINY = os.environ.get("INVLIMITS_TINY", "0") == "1"
OUT = Path(os.environ.get("INVLIMITS_NB_OUT", "runs/notebooks")) / "05_cem_in_your_loop"
OUT.mkdir(parents=True, exist_ok=True)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
N_TRAIN = 500 if TINY else None                # training images (None: all 1347)
N_TEST = 250 if TINY else None                 # held-out images the attacks are scored on (None: all 450)
EPOCHS = 10 if TINY else 30
ATT_EPOCHS = 6 if TINY else 30                 # training epochs of each decoder attack
SIGMA = 0.1                                    # z = f(x) + N(0, σ² I)
LAM = 0.01 if TINY else 0.03                   # CEM's λ: the values notebook 03 measured for this model
T0 = time.perf_counter()
print(f"TINY={TINY}, device {DEVICE}, figures -> {OUT}")

# %% [markdown]
# ## 1. Your data, your models, your loop
#
# Nothing below is specific to this package except the four marked lines. The encoder is two
# convolutions ending in a sigmoid with 4 channels (so $\hat z$ has $4\times8\times8=256$
# dimensions), the head a small CNN; both are built from a fixed seed so that every run starts
# from the same weights.

# %%
split = data.digits(seed=0)
train_set = split.train if N_TRAIN is None else split.train.subset(np.arange(N_TRAIN))
test_set = split.test if N_TEST is None else split.test.subset(np.arange(N_TEST))
d = int(np.prod(split.input_shape))
train_ds = TensorDataset(train_set.x, train_set.y)
print(f"train {len(train_set)}, held out {len(test_set)}, input {split.input_shape} (d = {d})")


def new_models(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1),
                                nn.Sigmoid())
        head = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 16, 10))
    return encoder.to(DEVICE), head.to(DEVICE)


def fit(defenses, *, seed=0, use_defend=True):
    """A plain loop: Adam, batches of 64 from a seeded DataLoader, cross-entropy."""
    encoder, head = new_models(seed)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    loader = DataLoader(train_ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    if use_defend:
        defended = defend(encoder=encoder, defenses=defenses, optimizer=optimizer,   # (1) attach
                          data=train_ds, seed=seed)
    t = time.perf_counter()
    for epoch in range(EPOCHS):
        encoder.train()
        head.train()
        for x, y in loader:
            x, y = x.to(DEVICE), y.to(DEVICE)
            if use_defend:
                defended.train()
                loss = F.cross_entropy(head(defended(x)), y) + defended.loss(y)      # (2) CEM's term
            else:
                loss = F.cross_entropy(head(encoder(x)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if use_defend:
                defended.step()                                                   # (3) after the step
        if use_defend:
            defended.epoch_end()                                                  # (4) epoch's end
    seconds = time.perf_counter() - t
    return (defended if use_defend else encoder), head, seconds


def weights(*modules):
    return torch.cat([p.detach().flatten().cpu() for m in modules for p in m.parameters()])


# %% [markdown]
# ## 2. The off-switch
#
# A defense at strength 0 must not change training at all — not even by drawing a random number.
# With CEM at $\lambda=0$ (and the noise at $\sigma=0$) the loop with `defend` gives the same
# weights, bit for bit, as the loop without it (the test suite checks this for every registered
# defense).

# %%
plain_enc, plain_head, t_plain = fit([], use_defend=False)
off, off_head, t_off = fit(["noise:sigma=0", "cem:lam=0"])
same = torch.equal(weights(plain_enc, plain_head), weights(off.encoder, off_head))
print(f"plain loop {t_plain:.1f} s, with defend() at strength 0 {t_off:.1f} s; identical weights: {same}")
assert same

# %% [markdown]
# ## 3. Noise, and noise + CEM
#
# Same loop, same seed; the only difference is the CEM term $\lambda L_C$ (the λ window for this
# model is narrow — notebook 03 measured it: larger λ collapses the features).

# %%
runs = {}
for name, specs in (("noise", [f"noise:sigma={SIGMA}"]),
                    ("noise+cem", [f"noise:sigma={SIGMA}", f"cem:lam={LAM},k_per_class=3"])):
    defended, head, secs = fit(specs)
    model = defended.split_model(head, input_shape=split.input_shape, unit_range=True)  # for attacks/measures
    defended.eval()
    head.eval()
    with torch.no_grad():
        acc = float((head(defended(test_set.x.to(DEVICE))).argmax(1).cpu() == test_set.y).float().mean())
    runs[name] = {"defended": defended, "model": model, "accuracy": acc, "seconds": secs}
    print(f"{name:10s} held-out accuracy {acc:.3f}   ({secs:.1f} s for {EPOCHS} epochs)")
cem = runs["noise+cem"]["defended"].defenses[1]
print(f"CEM: L_C on the last batch {cem.last_loss:.2f} nats (Eq. 7), {len(cem.history)} steps")
assert runs["noise"]["accuracy"] > 0.5, runs["noise"]["accuracy"]  # chance is 0.1

# %% [markdown]
# ## 4. Attack both, and measure $H(x|z)$
#
# `defended.split_model(head)` shares the trained encoder, head and defenses with the package's
# tools. The decoder attack queries the deployed client (noise included) with the training images,
# learns $z\mapsto\hat x$ and is scored on held-out images (MSE per pixel ± its standard error).
# `conditional_entropy` fits a per-class Gaussian mixture to the noise-free features and returns
# $H(x)-U$ for three upper bounds $U$ on $I(z;\hat z)$ — `huber` (Theorem 2 as printed, the quantity
# CEM maximises), `kl` (never looser) and `maxent` (no mixture assumption). They are **relative**
# entropies ($H(x)$ replaced by 0, the entropy of the uniform law on $[0,1]^{64}$), so they compare
# models; $\frac{1}{2\pi e}e^{2H/d}$ computed from them is not a certified MSE floor.

# %%
rows = []
for name, r in runs.items():
    att = DecoderAttack(epochs=ATT_EPOCHS, width=32, n_res=1, batch_size=64)
    att.fit(r["model"], train_set, seed=0, device=DEVICE, progress=False)
    ev = att.evaluate(r["model"], test_set, seed=0)
    h = conditional_entropy(r["model"], train_set)
    r.update(mse=ev["mse"], mse_se=ev["mse_stderr"], H=h)
    rows.append((name, r["accuracy"], ev["mse"], ev["mse_stderr"], h["huber"], h["kl"], h["maxent"]))
print("H(x|z) − H(x) ≥ H columns, in nats (relative: H(x) replaced by 0); MSE per pixel on held-out images")
print(f"{'':10s} {'accuracy':>8s} {'MSE':>8s} {'± s.e.':>7s} {'H huber':>9s} {'H kl':>9s} {'H maxent':>9s}")
for name, acc, mse, se, hh, hk, hm in rows:
    print(f"{name:10s} {acc:8.3f} {mse:8.4f} {se:7.4f} {hh:9.1f} {hk:9.1f} {hm:9.1f}")
a, b = runs["noise"], runs["noise+cem"]
gap, se = b["mse"] - a["mse"], float(np.hypot(a["mse_se"], b["mse_se"]))
print(f"CEM changes the decoder MSE by {gap:+.4f} ({gap / se:+.1f} s.e.) and the Thm-2 entropy (huber) by "
      f"{b['H']['huber'] - a['H']['huber']:+.1f} nats, at an accuracy change of {b['accuracy'] - a['accuracy']:+.3f}")
# CEM maximises exactly the Thm-2 bound (huber): after training with it, that entropy must be higher
assert b["H"]["huber"] > a["H"]["huber"], (a["H"], b["H"])
assert all(np.isfinite(v) for row in rows for v in row[1:])

fig, ax = plt.subplots(figsize=(4.6, 3.2))
for name, r in runs.items():
    ax.errorbar(r["H"]["kl"], r["mse"], yerr=2 * r["mse_se"], fmt="o", label=f"{name} (acc {r['accuracy']:.2f})")
ax.set_xlabel("H(x|z) − H(x), Thm 2 with the KL bound [nats]")
ax.set_ylabel("decoder MSE per pixel (±2 s.e.)")
ax.set_title(f"digits, σ = {SIGMA}, CEM λ = {LAM}")
ax.legend(fontsize=8)
fig.savefig(OUT / "mse_vs_entropy.png", dpi=110, bbox_inches="tight")
print("saved", OUT / "mse_vs_entropy.png")
if "ipykernel" in sys.modules:
    plt.show()
else:
    plt.close(fig)

# %% [markdown]
# ## 5. What else plugs in the same way
#
# * Any registered defense by name: `noise`, `dropout`, `bottleneck`, `nopeek`, `arl`, `mixcon`,
#   `unicon`, `tl_freeze`, `cem` (an unknown name or parameter is refused with the valid ones listed).
#   ARL's adversary is trained *inside* `defended.step()` by its own optimizer — it never enters yours.
# * `torch.compile(encoder)` before `defend`, or `torch.compile(defended)`; on a GPU everything
#   follows the encoder's parameters.
# * `invlimits train` and `empirics.training.train` run exactly this loop: with the same seed and
#   batches they give the same weights as a loop written with `defend` (tested).

# %%
print(f"notebook 05 done in {time.perf_counter() - T0:.1f} s")
