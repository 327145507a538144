"""Composition root: the only package that wires stages together and touches process-wide state."""
