"""Hardness: MAX-E3SAT(B) -> two-layer ReLU network inversion (MixCon appendix, Thm B.10-B.11, Cor. B.12).

Build the network h_φ of the reduction from any CNF (:func:`build_network`), and check every claim
of the proof per instance with real solvers (python-sat): clause truth tables, completeness (SAT
model ⇒ h(x) = z exactly), soundness against the exact MaxSAT optimum (RC2) and against inversion
attacks, the Lipschitz constants, and exhaustive enumeration for n ≤ 12.

Importing :mod:`reduction` imports neither torch nor pysat; they are imported by the functions that
use them (``to_torch``, ``invert(method="pgd")``; the solver checks).

Errata (see DESIGN.md §4 and the module docstrings): the printed clause bias −2 is exact only for
3-literal clauses (use −(k−1)); the soundness proof's typos ("x_i = 0", T = m + 128B²n, n ≤ 3m) and
its corrected per-instance inequality; the unbuildable constants (B ≥ 15000, 100B² copies); the
Lipschitz step (‖W₂‖ = √2, the printed "‖W⁽²⁾‖ ≤ √(200B²+3B)" is about W⁽¹⁾).
"""

from .attacks import InversionResult, LPInversionResult, invert, invert_one_layer_lp
from .checks import (
    CompletenessResult,
    ExhaustiveResult,
    LipschitzResult,
    SoundnessResult,
    TruthTableResult,
    check_completeness,
    check_soundness,
    exhaustive_check,
    lipschitz_check,
    max_sat,
    soundness_bound,
    truth_table_check,
)
from .formulas import (
    Formula,
    as_assignment,
    as_formula,
    count_unsatisfied,
    instance_batch,
    occurrences,
    parse_dimacs,
    planted_e3sat,
    random_e3sat,
    random_ksat,
    read_dimacs,
    to_dimacs,
    unsatisfied_mask,
    write_dimacs,
)
from .network import ReductionNetwork, build_network, clause_biases, clause_matrix

__all__ = [
    # formulas
    "Formula", "as_formula", "as_assignment", "occurrences", "random_e3sat", "random_ksat",
    "planted_e3sat", "parse_dimacs", "read_dimacs", "write_dimacs", "to_dimacs", "count_unsatisfied",
    "unsatisfied_mask", "instance_batch",
    # network
    "ReductionNetwork", "build_network", "clause_matrix", "clause_biases",
    # checks
    "TruthTableResult", "CompletenessResult", "SoundnessResult", "LipschitzResult", "ExhaustiveResult",
    "truth_table_check", "check_completeness", "max_sat", "check_soundness", "soundness_bound",
    "lipschitz_check", "exhaustive_check",
    # attacks
    "InversionResult", "LPInversionResult", "invert", "invert_one_layer_lp",
]
