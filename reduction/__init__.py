"""Hardness: MAX-E3SAT(B) -> two-layer ReLU network inversion (MixCon appendix, Thm B.10)."""
