"""Closed-form bounds on the effective conductivity of a two-phase map (used by the `bounds` surrogate).

Wiener: harmonic mean ≤ each eigenvalue of σ_eff ≤ arithmetic mean, for any microstructure
(and exactly for the five-point network too: a uniform field and a uniform current are
admissible trial fields of its two variational principles). Hashin–Shtrikman (2D): the
tightest bounds given only the two conductivities and the fill fraction; the mean eigenvalue
trace(σ_eff)/2 of a continuum two-phase composite lies between them, with laminates and
coated circles attaining them.
"""

from __future__ import annotations

import numpy as np


def two_phase_parameters(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(σ_low, σ_high, fill fraction of σ_high) of each two-valued map (B, n, n).

    A uniform map has σ_low = σ_high; its fill is 1 by this rule, which no formula here minds.
    """
    maps = np.asarray(maps, dtype=np.float64)
    low, high = maps.min(axis=(-2, -1)), maps.max(axis=(-2, -1))
    return low, high, (maps == high[:, None, None]).mean(axis=(-2, -1))


def wiener_bounds(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic mean, arithmetic mean) of each map's pixels (B, n, n)."""
    maps = np.asarray(maps, dtype=np.float64)
    return 1.0 / np.mean(1.0 / maps, axis=(-2, -1)), np.mean(maps, axis=(-2, -1))


def hashin_shtrikman_bounds(low: np.ndarray, high: np.ndarray, fill_high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2D Hashin–Shtrikman (lower, upper) bounds for phases σ_low ≤ σ_high at fill f of σ_high.

    Lower: σ_low + f/(1/(σ_high − σ_low) + (1 − f)/(2σ_low)), written without the
    1/(σ_high − σ_low) so equal phases need no special case; the upper bound swaps the roles.
    """
    low, high, f = (np.asarray(v, dtype=np.float64) for v in (low, high, fill_high))
    d = high - low
    lower = low + 2.0 * low * f * d / (2.0 * low + (1.0 - f) * d)
    upper = high - 2.0 * high * (1.0 - f) * d / (2.0 * high - f * d)
    return lower, upper
