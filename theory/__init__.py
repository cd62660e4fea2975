"""Theory: entropy limits of model inversion (CEM paper, Prop. 1, Thms 1-2) in numpy/scipy/sympy."""
