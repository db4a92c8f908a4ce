"""Elementwise arithmetic the simulators need faster than NumPy's general ufuncs give it.

:func:`floor_mod` is ``np.mod`` (Python's ``%``) for a positive whole-number period, bit for
bit: NumPy's float ``remainder`` calls the C library's ``fmod`` per element, about ten times
the cost of a floor, a multiply and a subtract, and it was 70 % of Driving's road painting
at every reset (issue 20). That painting is now a compiled loop
(:func:`mmrl.envs.driving.kernels.road_kinds_kernel`) using the same identity per element;
this array form and its tests are the reference it relies on.

:func:`scale_uniform` turns raw doubles of ``Generator.random`` into what
``Generator.uniform`` would have returned from the same stream, so consecutive uniform draws
can be one generator call (each call costs ~1 us of overhead, and Driving's resets make
several per copy).
"""

from __future__ import annotations

import numpy as np


def floor_mod(a: np.ndarray, period: float) -> np.ndarray:
    """``np.mod(a, period)``, bit-identical, for a whole-number ``period > 0``.

    Why it is exact: ``q = floor(a / period)`` is the true floor of the quotient or one more
    (rounding the quotient cannot cross an integer downwards, and crosses at most one
    upwards while ``|a / period| < 2**52``); ``q * period`` is an integer, so exact, and
    ``a - q * period`` is the true remainder ``m`` (or ``m - period``, exact too) rounded
    once. Adding ``period`` back to a negative one rounds the exact ``m``, as NumPy's
    ``fmod(a, period) + period`` does for negative ``a``; both give ``+0.0`` for zero.

    Args:
        a: Float array (float32 or float64) with ``|a| < 2**24 * period`` (float32) or
            ``2**52 * period`` (float64): the bound under which the products are exact.
        period: A whole number, ``> 0``.

    Returns:
        A new array of ``a``'s shape and dtype, in ``[0, period]`` (``period`` only where the
        true remainder rounds up to it, as with ``np.mod``).
    """
    q = np.floor(a / period)
    r = a - q * period
    np.add(r, period, out=r, where=r < 0)
    return r


def scale_uniform(u: np.ndarray | float, low: float, high: float) -> np.ndarray | float:
    """``Generator.uniform(low, high)`` from the raw double ``u`` it would have drawn.

    ``Generator.uniform`` takes the next double ``u`` of the stream (as ``Generator.random``
    does) and returns ``low + (high - low) * u`` computed in double precision; this computes
    the same expression in the same order, so the result is bit-identical
    (``tests/envs/test_numeric.py`` checks it against the generator).

    Args:
        u: Doubles in ``[0, 1)`` from ``Generator.random`` (float64 array or float).
        low, high: The bounds ``Generator.uniform`` would have been given.

    Returns:
        ``u``'s shape, float64.
    """
    return low + (high - low) * u
