"""The phase-transition experiment's library code (reduction/phase.py): cells, statistics, families."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reduction import max_sat
from reduction.phase import (
    PhaseCellConfig,
    agreement_table,
    family_instances,
    peak,
    phase_cells,
    phase_table,
    run_cell,
    run_families,
    summary_stats,
    wilson,
)


@given(st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_properties(kn):
    """Wilson (1927): contains k/n, inside [0, 1], mirror-symmetric in k ↔ n − k, narrower than 2·z·0.5/√n + ..."""
    k, n = kn
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= k / n <= hi
        lo2, hi2 = wilson(n - k, n)
        assert lo == pytest.approx(1 - hi2, abs=1e-12) and hi == pytest.approx(1 - lo2, abs=1e-12)
        assert hi - lo <= 1.96 / math.sqrt(n) + 1e-12   # half-width ≤ z/(2√n) (the k = n/2 maximum)


def test_wilson_closed_form_cases():
    # k = 0: the upper end solves p = z²/(n + z²)
    z = 1.959963984540054
    assert wilson(0, 50)[1] == pytest.approx(z * z / (50 + z * z), rel=1e-12)
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(3, 2)


def test_summary_stats_standard_error():
    s = summary_stats([1.0, 2.0, 3.0, 4.0, None])
    assert s["n"] == 4 and s["median"] == 2.5 and s["stderr"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert summary_stats([])["median"] is None and summary_stats([5.0])["stderr"] is None


def test_cell_config_identity_and_formulas():
    a = PhaseCellConfig(n=10, density=4.26, formulas=3)
    assert a.m == 43 and a.key() == PhaseCellConfig(n=10, density=4.26, formulas=3).key()
    assert a.key() != PhaseCellConfig(n=10, density=4.26, formulas=3, norm="l1").key()
    # the formulas depend on (seed, n, density, index) only: the same for every solver setting
    assert a.formula(2) == PhaseCellConfig(n=10, density=4.26, formulas=9, norm="l1", time_limit=5).formula(2)
    assert a.formula(1) != a.formula(2)


@pytest.mark.parametrize("kw,msg", [
    ({"n": 2}, "n: expected an integer >= 3"), ({"density": 0.0}, "density"), ({"formulas": 0}, "formulas"),
    ({"norm": "l2"}, "norm"), ({"attacks": ("adam",)}, "attacks"), ({"time_limit": -1.0}, "time_limit"),
    ({"density": 0.01}, "m = round"),
])
def test_cell_config_bad_values(kw, msg):
    base = {"n": 10, "density": 3.0}
    with pytest.raises(ValueError, match=msg):
        PhaseCellConfig(**{**base, **kw})


def test_run_cell_statistics_are_consistent():
    cfg = PhaseCellConfig(n=8, density=4.26, formulas=6, restarts=2, steps=20)
    r = run_cell(cfg)
    assert r.formulas == len(r.rows) == 6 and r.disagree == 0 and r.agree + r.undecided == 6
    assert r.n_sat == sum(row["sat"] for row in r.rows)
    assert r.p_sat_ci[0] <= r.p_sat <= r.p_sat_ci[1]
    for row in r.rows:       # the SAT solver against RC2, recomputed here
        assert row["sat"] == (max_sat(cfg.formula(row["t"]))[0] == 0)
    assert set(r.attacks) == {"lbfgsb", "pgd", "corners"}
    for a in r.attacks.values():
        assert a["n_sat"] == r.n_sat and a["below_lower"] == 0
        assert a["gap"]["n"] == 0 or a["gap"]["median"] >= -1e-6   # no attack below the exact minimum
    row = phase_table([r])[0]
    assert row["n"] == 8 and row["P(sat)"] == r.p_sat and "pgd success" in row


def test_families_and_agreement_table():
    fam = family_instances(quick=True)
    assert {d["family"] for d in fam} == {"planted 3-SAT", "pigeonhole", "parity"}
    small = [d for d in fam if d["formula"].nv <= 10]
    rows = run_families(small, norm="l1", time_limit=30.0)
    assert all(r["agree"] is True for r in rows)
    expect = {"PHP(3,2)": False, "PHP(2,2)": True, "parity(3)": False, "parity(4)": True}
    assert {r["name"]: r["sat"] for r in rows if r["name"] in expect} == expect
    cell = run_cell(PhaseCellConfig(n=6, density=3.0, formulas=2, attacks=()))
    table = agreement_table(rows, [cell])
    byfam = {(t["family"], t["norm"]): t for t in table}
    assert byfam[("random 3-SAT m/n=3", "linf")]["instances"] == 2
    assert sum(t["disagree"] for t in table) == 0
    assert sum(t["instances"] for t in table) == len(rows) + 2


def test_phase_cells_grid_and_peak():
    cells = phase_cells(ns=(6, 8), densities=(2.0, 6.0), formulas=2)
    assert [(c.n, c.density) for c in cells] == [(6, 2.0), (6, 6.0), (8, 2.0), (8, 6.0)]
    fake = [{"n": 6, "density": a, "milp_seconds": {"median": t}} for a, t in ((2.0, 0.1), (4.26, 0.5), (6.0, 0.3))]
    assert peak(fake) == {6: 4.26}
