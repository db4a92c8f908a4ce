"""Scalar helpers shared by the environments' numba kernels (``mmrl/envs/*/kernels.py``).

The kernels replace NumPy array code bit for bit (issue 20), so where the array code called
``np.minimum``/``np.maximum`` the kernels must return the same operand: on ties (equal
values, in practice ``+0.0`` and ``-0.0``) NumPy returns the second one, and the sign of a
zero can reach an observation (a range of ``-0.0`` is another float32 than ``0.0``).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def np_minimum(a, b):
    """``np.minimum(a, b)`` of two non-NaN scalars: ``a`` if smaller, else ``b``."""
    return a if a < b else b


@njit(cache=True, nogil=True)
def np_maximum(a, b):
    """``np.maximum(a, b)`` of two non-NaN scalars: ``a`` if larger, else ``b``."""
    return a if a > b else b
