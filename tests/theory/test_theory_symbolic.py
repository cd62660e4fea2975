"""sympy checks of Theorem 1's proof chain and the Thm 2 = Huber identity; import hygiene; strategies."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import theory
from theory import symbolic
from theory.strategies import gaussian_mixtures, linear_gaussian_channels, simplex_weights, spd_matrices


@pytest.mark.parametrize("check", [symbolic.check_max_entropy_step, symbolic.check_eigenvalue_am_gm,
                                   symbolic.check_jensen_over_z, symbolic.check_equality_case,
                                   symbolic.check_thm2_is_huber])
def test_symbolic_step_holds(check):
    v = check()
    assert v.holds, v
    assert v.statement and v.expressions
    assert set(v.to_dict()) == {"name", "holds", "statement", "expressions"}


def test_symbolic_equality_case_value():
    v = symbolic.check_equality_case()
    assert v.expressions["mmse_per_dim_at_noise_var"] == "1/5"
    assert v.expressions["difference"] == "0"


def test_check_all_names():
    names = [v.name for v in symbolic.check_all()]
    assert names == ["max_entropy_step", "eigenvalue_am_gm", "jensen_over_z", "equality_case", "thm2_is_huber"]


def test_import_theory_is_light():
    """`import theory` must not import hypothesis, torch, pysat, matplotlib (or sympy)."""
    code = ("import sys, theory; "
            "print([m for m in ('torch', 'pysat', 'matplotlib', 'hypothesis', 'sympy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", theory.__all__)
def test_public_api_exported(name):
    assert hasattr(theory, name)


def test_lazy_submodules():
    assert "Estimate" in theory.__all__
    assert theory.symbolic is symbolic
    with pytest.raises(AttributeError):
        theory.no_such_thing


@given(spd_matrices(dim=st.integers(1, 5), min_eig=0.2, max_eig=5.0))
def test_spd_strategy(m):
    ev = np.linalg.eigvalsh(m)
    assert np.array_equal(m, m.T)
    assert ev.min() >= 0.2 * (1 - 1e-9) and ev.max() <= 5.0 * (1 + 1e-9)


@given(simplex_weights(st.integers(1, 6), min_weight=0.05))
def test_simplex_strategy(w):
    assert abs(w.sum() - 1) < 1e-12 and w.min() >= 0.05 - 1e-12


@given(gaussian_mixtures(), linear_gaussian_channels(out_dim=2))
def test_mixture_and_channel_strategies(g, ch):
    assert isinstance(g, theory.GaussianMixture) and 1 <= g.dim <= 3
    A, cx, cn = ch
    assert A.shape == (2, cx.shape[0]) and cn.shape == (2, 2)
