"""Cheap approximate labels for the surrogate split: trace(σ_eff)/2 without the full solve.

- ``coarse``: the same cell problem on the map coarse-grained by a factor c (32×32 → 8×8 at
  c = 4), each c×c block replaced by the geometric mean of its pixels, solved by a dense
  batched solve up to 8×8 (64 unknowns: cheaper there than CG's per-iteration overhead). The geometric mean is
  the exact σ_eff of a two-phase checkerboard (Keller–Dykhne) and lies between a block's
  Wiener bounds; of the arithmetic, geometric and harmonic block rules it tracked the full
  label best (README, "Surrogates"). Point-group ops map blocks to blocks, so these labels
  keep the C4v invariance; translations by other than multiples of c move the blocks.
- ``bounds``: the midpoint of the 2D Hashin–Shtrikman bounds, from the two conductivities and
  the fill fraction alone: no solve at all, and blind to the geometry.
"""

from __future__ import annotations

import numpy as np

from sibcl_composite.bounds import hashin_shtrikman_bounds, two_phase_parameters
from sibcl_composite.homogenise import effective_conductivity

SURROGATES = ("coarse", "bounds")
#: Largest coarse grid solved densely: at 8×8 a dense solve is ~5× faster than CG (whose cost
#: there is per-iteration overhead), at 16×16 (O(n⁶) factorisation) ~10× slower.
DIRECT_MAX_GRID = 8


def coarse_grain(maps: np.ndarray, factor: int) -> np.ndarray:
    """Geometric means of the ``factor``×``factor`` blocks of each map (B, n, n) → (B, n/factor, n/factor)."""
    maps = np.asarray(maps, dtype=np.float64)
    batch, n, _ = maps.shape
    if n % factor:
        raise ValueError(f"grid {n} is not divisible by the coarsening factor {factor}")
    m = n // factor
    blocks = np.log(maps).reshape(batch, m, factor, m, factor)
    return np.exp(blocks.mean(axis=(2, 4)))


def coarse_labels(maps: np.ndarray, factor: int) -> np.ndarray:
    """trace(σ_eff)/2 of the coarse-grained maps (B,): dense solve up to DIRECT_MAX_GRID, CG above."""
    coarse = coarse_grain(maps, factor)
    return effective_conductivity(coarse, method="direct" if coarse.shape[-1] <= DIRECT_MAX_GRID else "cg")


def bounds_labels(maps: np.ndarray) -> np.ndarray:
    """Midpoint of the Hashin–Shtrikman bounds of each two-phase map (B,)."""
    lower, upper = hashin_shtrikman_bounds(*two_phase_parameters(maps))
    return 0.5 * (lower + upper)
