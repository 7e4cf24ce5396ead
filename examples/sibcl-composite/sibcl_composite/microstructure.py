"""Random two-phase periodic conductivity maps: the problem's inputs (free to make).

A map is the level set of a smooth random periodic field, Re Σ_G c_G e^{2πi G·r} over the
25 reciprocal vectors G = (n1, n2), |n_i| ≤ 2, with c_G = r·e^{iφ}, r ~ U(0, 1),
φ ~ U(0, 2π) (the photonic-crystal cells of sibcl_ray use |n_i| ≤ 1; two harmonics give
inclusions, channels and necks, so connectivity, which drives σ_eff at high contrast,
varies from map to map). The level is the (1 − fill) quantile of the field over the pixels,
fill ~ U(0.01, 0.99); phase conductivities are drawn independently and log-uniformly in
SIGMA_RANGE, since what matters physically is their ratio, not their difference.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

#: Physical range of a phase conductivity (arbitrary units: σ_eff scales with it).
SIGMA_RANGE: tuple[float, float] = (1.0, 100.0)
FILL_RANGE: tuple[float, float] = (0.01, 0.99)
MAX_HARMONIC = 2
#: The reciprocal vectors of the random field, in a fixed order (a seed reproduces a map).
HARMONICS = np.array(list(itertools.product(range(-MAX_HARMONIC, MAX_HARMONIC + 1), repeat=2)), dtype=np.float64)


@lru_cache(maxsize=4)
def _plane_waves(n: int) -> np.ndarray:
    """e^{2πi G·r} at the pixel corners r = (i, j)/n, (25, n, n): computed once per grid, not per map."""
    x = np.arange(n) / n
    waves = np.exp(2j * np.pi * (HARMONICS[:, 0, None, None] * x[:, None] + HARMONICS[:, 1, None, None] * x[None, :]))
    waves.setflags(write=False)
    return waves


def level_set_map(coefficients: np.ndarray, fill: float, sigma_in: float, sigma_out: float, n: int = 32) -> np.ndarray:
    """``sigma_in`` where the field is in its top ``fill`` fraction of pixels, ``sigma_out`` elsewhere."""
    field = np.real(np.tensordot(coefficients, _plane_waves(n), axes=1))
    return np.where(field > np.quantile(field, 1.0 - fill), sigma_in, sigma_out)


def sample_phases(rng: np.random.Generator) -> tuple[float, float]:
    """Two phase conductivities, log-uniform in SIGMA_RANGE, independent."""
    lo, hi = np.log(SIGMA_RANGE)
    sigma_in, sigma_out = np.exp(rng.uniform(lo, hi, size=2))
    return float(sigma_in), float(sigma_out)


def sample_map(rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """One random map (n, n). Draw order (fixed): r[25], φ[25], fill, σ_in, σ_out."""
    r = rng.uniform(0.0, 1.0, len(HARMONICS))
    phi = rng.uniform(0.0, 2.0 * np.pi, len(HARMONICS))
    fill = rng.uniform(*FILL_RANGE)
    sigma_in, sigma_out = sample_phases(rng)
    return level_set_map(r * np.exp(1j * phi), fill, sigma_in, sigma_out, n)


def sample_maps(rng: np.random.Generator, count: int, n: int = 32) -> np.ndarray:
    """``count`` random maps (count, n, n), float32 as stored and as the network sees them.

    The float32 values are clipped back into SIGMA_RANGE, so rounding never puts an input
    outside the declared physical range.
    """
    maps = np.asarray([sample_map(rng, n) for _ in range(count)], dtype=np.float32).reshape(count, n, n)
    return np.clip(maps, np.float32(SIGMA_RANGE[0]), np.float32(SIGMA_RANGE[1]))
