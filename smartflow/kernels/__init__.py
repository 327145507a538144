"""Pure numba kernels over numpy arrays. This package imports nothing of smartflow."""
