"""Figures (matplotlib)."""
