"""Leaf package: types and policies every stage shares. Imports nothing of smartflow."""
