"""Inversion attacks with one interface: ``fit(...)`` then ``reconstruct(z)``."""
