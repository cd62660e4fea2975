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
# # 02 — Inverting a two-layer ReLU network is NP-hard: the reduction, checked
#
# The MixCon paper's appendix (Thm B.10) reduces MAX-E3SAT(B) — Boolean formulas whose clauses
# have exactly three literals and whose variables occur at most $B$ times — to inverting a
# two-layer ReLU network $h_\varphi(x)=W_2\,\sigma(W_1x+b)$ on the box $[-1,1]^n$:
#
# * **completeness:** if $\varphi$ is satisfiable, some $x$ has $h_\varphi(x)=z$ exactly;
# * **soundness:** if every assignment leaves at least OPT clauses unsatisfied, then every
#   $x\in[-1,1]^n$ has $\|h_\varphi(x)-z\|^2\ge \mathrm{OPT}\,(1-\tfrac{3}{100B})$.
#
# So an attacker who could approximately invert *every* such network could approximately solve
# MAX-3SAT. This notebook builds $h_\varphi$ from small formulas with the `reduction` package and
# checks each step with real SAT/MaxSAT solvers (python-sat), including the clause bias generalised
# beyond three literals and the proof's "n ≤ 3m", which needs unused variables dropped. Set
# `INVLIMITS_TINY=1` for a fast run; figures go to `$INVLIMITS_NB_OUT`.

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

import reduction as R

TINY = os.environ.get("INVLIMITS_TINY", "0") == "1"
OUT = Path(os.environ.get("INVLIMITS_NB_OUT", "runs/notebooks")) / "02_hardness_reduction"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
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
# ## 1. Building $h_\varphi$
#
# Encoding (as printed): $x_i=+1$ means $X_i$ **false**, $x_i=-1$ means $X_i$ true.
#
# * one **clause neuron** per clause: weight $+1$ on $x_i$ for a literal $X_i$, $-1$ for $\lnot X_i$,
#   bias $b_j$; on $\{\pm1\}^n$ its pre-activation is (#false literals − #true literals) $+\,b_j$;
#   it is copied to an output with target 0;
# * **copy neurons** $\sigma(x_i)+\sigma(-x_i)=|x_i|$, repeated $c$ times, with target 1 — they
#   push $x$ to the corners of the box.
#
# Then $\|h_\varphi(x)-z\|^2=\sum_j\sigma(w_j\cdot x+b_j)^2+c\sum_i(|x_i|-1)^2$, which on the corners
# is exactly the number of unsatisfied clauses.

# %%
phi = R.Formula(4, [(1, 2, 3), (-1, 2, -3), (1, -2, 4), (-2, -3, -4), (-1, 3, 4)])
net = R.build_network(phi, form="compact")
print("formula:", phi.clauses)
print(f"B = {net.B} (max occurrences), copies c = 100B² = {net.copies}")
print("compact (d, hidden, outputs):", net.shape)
print("clause block of W1 (rows = clauses, columns = variables):")
print(R.clause_matrix(phi).toarray().astype(int))
print("clause biases:", R.clause_biases(phi))

# every corner of the box: residual == number of unsatisfied clauses
ex = R.exhaustive_check(phi)
print(ex)
assert ex.passed and ex.n_mismatch == 0

# %% [markdown]
# ## 2. The clause neuron's truth table — and the bias for other clause lengths
#
# For a clause with $k$ literals, the pre-activation on $\{\pm1\}^n$ is $k-2t+b$ where $t$ is the
# number of true literals. We want $\sigma(\cdot)=1$ when $t=0$ and $0$ when $t\ge1$, i.e.
# $k+b=1$ and $k-2+b\le0$: this forces $b=-(k-1)$. Thm B.10 reduces from MAX-E3SAT, where every
# clause has $k=3$ literals and the printed $b=-2$ is exactly right. $b=-(k-1)$ *generalises* the
# construction to other clause lengths — needed for general DIMACS input such as pigeonhole
# formulas — and is not an error in the theorem. Applied to other lengths, $-2$ fails: for $k=2$ an
# unsatisfied clause outputs $\sigma(0)=0$ (invisible); for $k=4$ it outputs $\sigma(2)=2$.

# %%
clause = (1, -2, 3)
f1 = R.Formula(3, [clause])
n1 = R.build_network(f1, form="compact")
print(f"clause {clause}\nX1 X2 X3 | pre-activation | neuron | unsatisfied?")
for a in range(8):
    assign = [(a >> i) & 1 == 1 for i in range(3)]
    x = n1.to_input(assign)
    pre = float(R.clause_matrix(f1).toarray()[0] @ x + n1.b[0])
    out = float(n1.hidden(x)[0])
    unsat = int(R.count_unsatisfied(f1, np.array(assign)))
    row = "  ".join("T" if v else "F" for v in assign)
    print(f" {row}  | {pre:6.1f}         | {out:4.1f}   | {unsat}")
    assert out == unsat

for k in (2, 3, 4):
    cl = list(range(1, k + 1))
    paper = R.truth_table_check(cl, bias="paper")
    exact = R.truth_table_check(cl, bias="exact")
    print(f"k={k}: bias -2 (paper) passed={paper.passed} ({paper.n_mismatches} of {paper.n_rows} rows wrong)"
          f";  bias -(k-1) passed={exact.passed}")
    for mm in paper.mismatches:
        print("      e.g. assignment", mm["assignment"], "expected", mm["expected"], "got", mm["got"])
    assert exact.passed and paper.passed == (k == 3)

# %% [markdown]
# Consequence for a whole network built from 2-literal clauses (outside the theorem's E3 input):
# with $-2$ a violated 2-literal clause costs nothing, so the residual at a corner no longer counts
# unsatisfied clauses — completeness still holds, but soundness fails (a residual of 0 for an
# unsatisfiable formula). With $-(k-1)$ it counts them again.

# %%
unsat2 = R.Formula(2, [(1, 2), (1, -2), (-1, 2), (-1, -2)])    # every assignment violates one clause
opt2, _ = R.max_sat(unsat2)
for bias in ("paper", "exact"):
    nb = R.build_network(unsat2, form="compact", bias=bias)
    corners = np.array([[s1, s2] for s1 in (-1.0, 1.0) for s2 in (-1.0, 1.0)])
    print(f"bias={bias:5s}: residuals at the 4 corners = {nb.residual(corners)}, MaxSAT optimum = {opt2}")
assert np.all(R.build_network(unsat2, form="compact", bias="paper").residual(corners) == 0)

# %% [markdown]
# ### Unused variables and the ε-test
#
# Soundness is stated for the ε-test of Def. B.9, $\|h(x)-z\|_2\le\varepsilon\sqrt{m_2}$ with
# $\varepsilon=1/(60B)$ and $m_2=m+100B^2n$ outputs. The proof bounds $\varepsilon^2m_2\approx n/36$
# by $m/12$ using $n\le3m$ — true only when every variable occurs in a clause. A DIMACS header may
# declare variables that occur nowhere: with one copy block each they inflate $m_2$ but not the
# residual. One clause and 97 unused variables: the printed network accepts the all-false corner,
# which satisfies 0 % of the clauses. `build_network` therefore gives the network one input per
# *occurring* variable (`drop_unused=True`); assignments stay in the formula's numbering.

# %%
phi_unused = R.Formula(100, [(1, 2, 3)])
all_false = np.zeros(100, dtype=bool)
for drop in (False, True):
    nu = R.build_network(phi_unused, form="compact", drop_unused=drop)
    va = R.value_approximation_check(nu, nu.to_input(all_false))
    print(f"drop_unused={drop!s:5}: inputs d={nu.d:3d}, m2={va.m2:5d}, ||h(x)-z|| = {va.norms[0]:.3f} vs "
          f"eps*sqrt(m2) = {va.threshold:.3f} -> accepted={va.approximate[0]}, satisfied "
          f"{va.fraction_satisfied[0]:.0%} (needs >= 7/8): passed={va.passed}")
    assert va.passed == drop

# %% [markdown]
# ## 3. Completeness via a SAT solver
#
# A planted satisfiable E3-CNF; the solver's model, mapped to $x$, gives $h_\varphi(x)=z$ exactly
# (no tolerance is needed: every activation is a small integer). We use the *faithful* network with
# all $c=100B^2$ copies here.

# %%
n_pl = 12 if TINY else 40
phi_sat, planted = R.planted_e3sat(n_pl, n_pl * 4 // 3, 4, rng)
comp = R.check_completeness(phi_sat)                    # faithful form by default
print(f"n={phi_sat.nv}, m={phi_sat.m}: satisfiable={comp.satisfiable}, exact={comp.exact}, "
      f"residual={comp.residual}, max|h(x)-z|={comp.max_abs_error}")
assert comp.passed and comp.residual == 0.0

# %% [markdown]
# ## 4. Soundness against the exact MaxSAT optimum
#
# For an over-constrained (unsatisfiable) formula, RC2 computes OPT = the minimum number of
# unsatisfied clauses. The (corrected) soundness inequality says that *no* point of the box — not
# just the corners — has residual below $\mathrm{OPT}(1-3/(100B))$. It is proved (the check's
# docstring has the proof) and RC2 is exact, so evaluating it on random points, points near the
# corners and attack end points cannot refute it: it checks that the *code* computes what the
# proof describes (a regression check), not the theorem.

# %%
n_ov = 10 if TINY else 20
B_ov = 21                                     # m = 7n clauses: far above the 3-SAT threshold 4.27
for _ in range(20):                           # small random formulas can still be satisfiable
    phi_u = R.random_e3sat(n_ov, n_ov * B_ov // 3, B_ov, rng)
    opt, best_assign = R.max_sat(phi_u)
    if opt > 0:
        break
assert opt > 0, "no unsatisfiable instance drawn"
net_u = R.build_network(phi_u, B=B_ov, form="compact")
lower = R.soundness_bound(opt, B_ov)
print(f"n={phi_u.nv}, m={phi_u.m}, B={B_ov}: MaxSAT OPT = {opt}, soundness bound OPT(1-3/(100B)) = {lower:.4f}")

cands = np.vstack([
    rng.uniform(-1, 1, size=(200, n_ov)),                                     # anywhere in the box
    np.clip(net_u.lift(net_u.to_input(best_assign)) * (1 - rng.uniform(0, 0.02, (200, n_ov))), -1, 1),  # near OPT
])
att = R.invert(net_u, restarts=8 if TINY else 32, steps=100 if TINY else 300, method="lbfgsb", rng=rng)
cands = np.vstack([cands, att.xs])
snd = R.check_soundness(phi_u, B=B_ov, xs=cands, opt=opt)
print(f"{snd.n_candidates} candidates: min residual = {min(snd.residuals):.4f} >= {lower:.4f}; "
      f"passed={snd.passed}, smallest margin over all bounds = {snd.min_margin:.3e}")
assert snd.passed and min(snd.residuals) >= lower

# %% [markdown]
# ## 5. Gradient attacks are MAX-SAT heuristics
#
# Because of the reduction, an inversion attack on $h_\varphi$ *is* a MAX-SAT heuristic: minimise
# the residual over the box by gradient descent from random starts, then round $x$ to a corner.
# Neither the residual nor the rounded assignment can beat OPT (a theorem and an exact solver: the
# asserts below only guard the code); how close they get is a measure of how good the attack is.
# Below: a batch of over-constrained instances, two attacks — L-BFGS-B (scipy) and projected Adam
# (`method="pgd"`, torch) — against RC2.

# %%
n_inst = 6 if TINY else 30
rows = []
for t in range(n_inst):
    n = int(rng.integers(8, 13 if TINY else 25))
    B = int(rng.choice([18, 21]))
    f = R.random_e3sat(n, n * B // 3, B, rng)
    o, _ = R.max_sat(f)
    nt = R.build_network(f, B=B, form="compact")
    row = [n, f.m, B, o]
    for method in ("lbfgsb", "pgd"):
        r = R.invert(nt, restarts=4 if TINY else 16, steps=100 if TINY else 300, method=method, rng=rng)
        # soundness: no attack beats the bound; rounding cannot beat OPT
        assert r.residual >= R.soundness_bound(o, B) and r.min_unsatisfied >= o
        row += [r.residual, r.min_unsatisfied]
    rows.append(row)
rows = np.array(rows, dtype=float)
print("columns: n, m, B, OPT, L-BFGS-B residual, its best rounding, PGD residual, its best rounding")
for rr in rows:
    print("n={:3.0f} m={:4.0f} B={:2.0f}: OPT={:2.0f} | lbfgsb {:7.3f} -> {:2.0f} | pgd {:7.3f} -> {:2.0f}".format(*rr))
print("a uniformly random assignment leaves m/8 clauses unsatisfied on average: mean m/8 =",
      (rows[:, 1] / 8).mean().round(2), " vs mean best attack rounding",
      np.minimum(rows[:, 5], rows[:, 7]).mean().round(2), " vs mean OPT", rows[:, 3].mean().round(2))
print("mean excess of the rounded assignment over OPT: lbfgsb",
      (rows[:, 5] - rows[:, 3]).mean().round(2), " pgd", (rows[:, 7] - rows[:, 3]).mean().round(2))

# %% [markdown]
# The attacks end at (near-)corners far above the optimum: with $c=100B^2$ the copy terms dominate
# the landscape, so every coordinate is pushed to $\pm1$ almost at once and the descent stalls at
# a local minimum of the MAX-SAT landscape. They beat a random assignment, but not the exact solver.

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
lim = [0, rows[:, 3:].max() * 1.1]
ax.plot(lim, lim, "k:", lw=1, label="= OPT")
ax.plot(rows[:, 3], rows[:, 4], "o", mfc="none", label="L-BFGS-B residual")
ax.plot(rows[:, 3], rows[:, 6], "s", mfc="none", label="PGD residual")
ax.plot(rows[:, 3], np.minimum(rows[:, 5], rows[:, 7]), "x", label="best rounding: #unsatisfied")
ax.set_xlabel("MaxSAT optimum OPT (RC2)")
ax.set_ylabel("what the attack reached")
ax.set_title("Inversion attack as a MAX-SAT heuristic")
ax.legend()
save(fig, "attack_vs_optimum.png")

# %% [markdown]
# ## 6. Compact versus faithful networks, and the paper's constants
#
# The paper's network has $c=100B^2$ copies of every $|x_i|$, and requires $B\ge15000$ — that is
# $2.25\cdot10^{10}$ copy neurons *per variable*: unbuildable. The *compact* form uses one copy pair
# with output weight $\sqrt c$ and target $\sqrt c$, which has exactly the same residual because
# $(\sqrt c|x_i|-\sqrt c)^2=c(|x_i|-1)^2$.

# %%
faith = R.build_network(phi_u, B=B_ov, form="faithful")
X = rng.uniform(-1, 1, size=(50, n_ov))
rf, rc = faith.residual(X), net_u.residual(X)
print("faithful shape (d, hidden, out):", faith.shape, " nnz(W1) =", faith.W1.nnz)
print("compact  shape (d, hidden, out):", net_u.shape)
print("max relative difference of residuals:", float(np.max(np.abs(rf - rc) / np.maximum(rc, 1))))
assert np.allclose(rf, rc, rtol=1e-9)
print(f"paper constants: B = 15000 -> c = 100 B² = {100 * 15000**2:.3e} copies per variable")

# %% [markdown]
# ## 7. Why two layers: one ReLU layer is inverted by a linear program
#
# For a single layer $y=\sigma(Wx+b)$ the set of preimages is a polyhedron: $W_jx+b_j=y_j$ where
# $y_j>0$ and $W_jx+b_j\le0$ where $y_j=0$. One LP finds a preimage in polynomial time. So knowing
# the *hidden* activations of $h_\varphi$ makes inversion easy; the hardness lives in the second
# layer, which only reveals the sums $\sigma(x_i)+\sigma(-x_i)$ and the clause neurons — a non-convex
# constraint set.

# %%
x_true = rng.uniform(-1, 1, size=net_u.d)              # one coordinate per network input
y = net_u.hidden(x_true)                                # first-layer activations
lp = R.invert_one_layer_lp(net_u.W1, net_u.b, y, bounds=(-1.0, 1.0))
print(f"LP on the first layer ({net_u.W1.shape[0]} units): success={lp.success}, "
      f"max|σ(W1 x + b) - y| = {lp.max_abs_error:.2e}, {lp.seconds * 1e3:.1f} ms")
assert lp.success and lp.max_abs_error < 1e-8
# The copy units σ(x_i), σ(-x_i) pin x down completely: the preimage is x_true itself.
print("max |x_LP - x_true| =", float(np.max(np.abs(lp.x - x_true))))

# %% [markdown]
# ## 8. Scale
#
# Build cost and memory of the two forms as $n$ grows ($m = nB/3$ clauses, $B=5$, $c=100B^2=2500$
# copies). The faithful network is a sparse matrix with $m+2cn$ rows; the compact one is dense with
# $m+2n$ rows. Both give the same residual.

# %%
sizes = [20, 50, 100] if TINY else [20, 50, 100, 200, 500, 1000]
scale = []
for n in sizes:
    f = R.random_e3sat(n, n * 5 // 3, 5, rng)
    t = time.perf_counter()
    fa = R.build_network(f, B=5, form="faithful")
    t_f = time.perf_counter() - t
    t = time.perf_counter()
    co = R.build_network(f, B=5, form="compact")
    t_c = time.perf_counter() - t
    Xs = rng.uniform(-1, 1, size=(8, n))
    assert np.allclose(fa.residual(Xs), co.residual(Xs), rtol=1e-9)
    mem_f = (fa.W1.data.nbytes + fa.W1.indices.nbytes + fa.W2.data.nbytes + fa.W2.indices.nbytes) / 2**20
    mem_c = (co.W1.nbytes + co.W2.nbytes) / 2**20
    scale.append((n, fa.shape[1], co.shape[1], t_f, t_c, mem_f, mem_c))
    print(f"n={n:5d}: hidden faithful={fa.shape[1]:8d} compact={co.shape[1]:5d}  "
          f"build {t_f * 1e3:7.1f} / {t_c * 1e3:6.1f} ms   memory {mem_f:7.2f} / {mem_c:6.2f} MiB")
scale = np.array(scale)

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(scale[:, 0], scale[:, 5], "o-", label="faithful (sparse)")
ax.loglog(scale[:, 0], scale[:, 6], "s-", label="compact (dense)")
ax.set_xlabel("variables n")
ax.set_ylabel("weight memory [MiB]")
ax.set_title("Size of h_φ (B = 5, c = 2500)")
ax.legend()
save(fig, "scale.png")

# %% [markdown]
# ## 9. A second exact solver: inverting the network itself
#
# Everything above decides $\varphi$ with solvers that read the *formula*. `R.exact_inversion`
# reads only the network ($W_1, b, W_2, z$) and computes $\min_{x\in[-1,1]^d}\|h_\varphi(x)-z\|$ in
# $\ell_1$ or $\ell_\infty$ exactly, by one mixed-integer program (HiGHS): a binary per unstable
# ReLU, big-M from interval bounds on the box. Its certificate is HiGHS's proved lower bound. With
# the default $c = 100B^2$ copies, the $\ell_1$ minimum *is* the MaxSAT optimum, and the $\ell_\infty$
# minimum is 0 exactly for satisfiable formulas (otherwise between $w/(w+3)$ and 1, $w=\sqrt c$).

# %%
rows = []
for name, f in [("PHP(4,3)", R.pigeonhole(4, 3)), ("PHP(3,3)", R.pigeonhole(3, 3)), ("parity(5)", R.parity(5)),
                ("random 3-SAT n=12, m/n=5", R.random_ksat(12, 60, 3, rng))]:
    cc = R.cross_check(f, norm="l1", time_limit=60)
    rows.append((name, cc.satisfiable, cc.opt, cc.exact.value, cc.exact.lower, cc.exact.status, cc.agree))
    print(f"{name:26s} SAT={cc.satisfiable!s:5}  RC2 OPT={cc.opt}  MILP l1 min={cc.exact.value:.6f} "
          f"(proved >= {cc.exact.lower:.6f}, {cc.exact.status}, {cc.exact.seconds:.2f} s)  agree={cc.agree}")
    assert cc.agree

# %% [markdown]
# ## 10. The phase transition, through $h_\varphi$
#
# Random 3-SAT flips from satisfiable to unsatisfiable near $m/n\approx 4.26$. Each cell below is a
# frozen `R.phase.PhaseCellConfig`; `run_cell` decides every formula with CaDiCaL and with the MILP
# on $h_\varphi$ (they must agree), and runs the gradient attacks. The command
# `invlimits reduction --experiment phase-transition` runs the full grid.

# %%
from reduction.phase import PhaseCellConfig, run_cell

dens = [2.0, 4.26, 6.0] if TINY else [2.0, 3.0, 3.5, 4.0, 4.26, 4.5, 5.0, 6.0]
cells = [run_cell(PhaseCellConfig(n=8 if TINY else 12, density=a, formulas=6 if TINY else 30,
                                  attacks=("lbfgsb",), steps=50 if TINY else 150)) for a in dens]
for c in cells:
    print(f"m/n={c.density:4.2f}: P(sat)={c.p_sat:.2f} [{c.p_sat_ci[0]:.2f}, {c.p_sat_ci[1]:.2f}]  "
          f"median MILP {c.milp_seconds['median']:.3f} s  disagreements {c.disagree}  "
          f"L-BFGS-B success {c.attacks['lbfgsb']['rate']}  random corners {c.attacks['corners']['rate']}")
    assert c.disagree == 0
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].errorbar(dens, [c.p_sat for c in cells], yerr=np.array([[c.p_sat - c.p_sat_ci[0], c.p_sat_ci[1] - c.p_sat]
                                                              for c in cells]).T, marker="o", capsize=2)
ax[0].set_xlabel("m/n")
ax[0].set_ylabel("P(exact preimage exists)")
ax[1].plot(dens, [c.milp_seconds["median"] for c in cells], "o-")
ax[1].set_xlabel("m/n")
ax[1].set_ylabel("median MILP seconds")
save(fig, "phase_transition.png")
print(f"notebook 02 done in {time.perf_counter() - T0:.1f} s")
