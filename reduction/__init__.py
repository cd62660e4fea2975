"""Hardness: MAX-E3SAT(B) -> two-layer ReLU network inversion (MixCon appendix, Thm B.10-B.11, Cor. B.12).

Build the network h_φ of the reduction from any CNF (:func:`build_network`), and check every claim
of the proof per instance with real solvers (python-sat): clause truth tables, completeness (SAT
model ⇒ h(x) = z exactly), soundness against the exact MaxSAT optimum (RC2) and against inversion
attacks, the Lipschitz constants, and exhaustive enumeration for n ≤ 12.  A second exact solver
works on the network alone: :func:`exact_inversion` computes min ‖h_φ(x) − z‖ (ℓ∞ or ℓ1) over the
box by a MILP (HiGHS), and :func:`cross_check` compares it with the SAT solver and RC2 instance by
instance; :mod:`reduction.phase` measures the phase transition of random 3-SAT through h_φ.

Importing :mod:`reduction` imports neither torch nor pysat (nor scipy's MILP); they are imported by the functions that
use them (``to_torch``, ``invert(method="pgd")``; the solver checks).

Errata and generalisations (see docs/errata.md and the module docstrings): Thm B.10 reduces from
MAX-E3SAT, where the printed clause bias −2 is right; −(k−1) generalises the construction to
k-literal clauses (general DIMACS input) and is the default, ``bias="paper"`` keeps −2.  The
soundness proof's typos ("x_i = 0", T = m + 128B²n, 1/(36B²), 1/(5√B)) and its corrected
per-instance inequality; its "n ≤ 3m" holds only for variables that occur, so the network drops
unused ones (``drop_unused=True``; assignments stay in the formula's numbering); the unbuildable
constants (B ≥ 15000, 100B² copies); the Lipschitz step (‖W₂‖ = √2, the printed
"‖W⁽²⁾‖ ≤ √(200B²+3B)" is about W⁽¹⁾).

Size limits (checked before allocating): :data:`MAX_VARIABLES`, :data:`MAX_CLAUSES`,
:data:`MAX_LITERALS`, :data:`MAX_DIMACS_BYTES` for formulas and DIMACS input,
:data:`MAX_NETWORK_BYTES` for the network (:func:`network_size` sizes one without building it).
"""

from .attacks import InversionResult, LPInversionResult, invert, invert_one_layer_lp
from .checks import (
    CompletenessResult,
    ExhaustiveResult,
    LipschitzResult,
    SoundnessResult,
    TruthTableResult,
    ValueApproximationResult,
    check_completeness,
    check_soundness,
    exhaustive_check,
    lipschitz_check,
    max_sat,
    soundness_bound,
    truth_table_check,
    value_approximation_check,
)
from .formulas import (
    MAX_CLAUSES,
    MAX_DIMACS_BYTES,
    MAX_LITERALS,
    MAX_VARIABLES,
    Formula,
    as_assignment,
    as_formula,
    count_unsatisfied,
    instance_batch,
    occurrences,
    parity,
    parse_dimacs,
    pigeonhole,
    planted_e3sat,
    random_e3sat,
    random_ksat,
    read_dimacs,
    to_dimacs,
    unsatisfied_mask,
    used_variables,
    write_dimacs,
)
from .exact import (
    MAX_MILP_BINARIES,
    CrossCheckResult,
    ExactInversionResult,
    copy_weight,
    cross_check,
    exact_inversion,
    exact_minimum_bounds,
    interval_bounds,
    milp_size,
    norm_residual,
)
from .network import MAX_NETWORK_BYTES, ReductionNetwork, build_network, clause_biases, clause_matrix, network_size

__all__ = [
    # formulas
    "MAX_VARIABLES", "MAX_CLAUSES", "MAX_LITERALS", "MAX_DIMACS_BYTES",
    "Formula", "as_formula", "as_assignment", "occurrences", "used_variables", "random_e3sat", "random_ksat",
    "planted_e3sat", "pigeonhole", "parity", "parse_dimacs", "read_dimacs", "write_dimacs", "to_dimacs", "count_unsatisfied",
    "unsatisfied_mask", "instance_batch",
    # network
    "MAX_NETWORK_BYTES", "ReductionNetwork", "build_network", "network_size", "clause_matrix", "clause_biases",
    # checks
    "TruthTableResult", "CompletenessResult", "SoundnessResult", "LipschitzResult", "ExhaustiveResult",
    "ValueApproximationResult",
    "truth_table_check", "check_completeness", "max_sat", "check_soundness", "soundness_bound",
    "value_approximation_check",
    "lipschitz_check", "exhaustive_check",
    # exact inversion (MILP)
    "MAX_MILP_BINARIES", "ExactInversionResult", "CrossCheckResult", "exact_inversion", "cross_check",
    "exact_minimum_bounds", "interval_bounds", "milp_size", "norm_residual", "copy_weight",
    # attacks
    "InversionResult", "LPInversionResult", "invert", "invert_one_layer_lp",
]
