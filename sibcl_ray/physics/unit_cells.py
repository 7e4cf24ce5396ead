"""Random square-lattice unit cells for the `phc` problem (docs/method.md).

Pixel convention shared with the solver (`planewave`): ``eps[i, j]`` is the pixel
centred at x = -0.5 + i/n, y = -0.5 + j/n (lattice constant a = 1).  The pixel-centre
set is symmetric under x -> -x (mod 1) and x <-> y for every n, so flips, transposes and
90° rotations of the array are exact maps of the lattice (point operation + translation).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EPS_RANGE",
    "pixel_centres",
    "level_set_cell",
    "sample_level_set_cell",
    "rod_cell",
    "sample_rod_cell",
]

EPS_RANGE = (1.0, 20.0)
"""Both permittivities of a cell are drawn uniformly from this range (docs/method.md)."""

_HARMONICS = np.array([(n1, n2) for n1 in (-1, 0, 1) for n2 in (-1, 0, 1)])
"""The 9 reciprocal vectors G = (n1, n2), |n_i| <= 1, of the level-set Fourier sum."""


def pixel_centres(n: int) -> tuple[np.ndarray, np.ndarray]:
    """x[i, j], y[i, j] of the pixel centres, -0.5 + index/n (units of a)."""
    c = -0.5 + np.arange(n) / n
    return np.meshgrid(c, c, indexing="ij")


def level_set_cell(
    coefficients: np.ndarray, fill: float, eps_in: float, eps_out: float, n: int = 32
) -> np.ndarray:
    """Two-valued cell: ``eps_in`` where Re Σ_G c_G e^{2πi G·r} is in its top ``fill`` fraction.

    ``coefficients`` are the 9 complex c_G in the order of ``_HARMONICS``.  The level is the
    (1 - fill) quantile of the sum over the pixel centres, so the fraction of ``eps_in`` pixels
    is ``fill`` up to one pixel (ties have probability zero).
    """
    x, y = pixel_centres(n)
    phase = 2j * np.pi * (_HARMONICS[:, 0, None, None] * x + _HARMONICS[:, 1, None, None] * y)
    field = np.real(np.tensordot(coefficients, np.exp(phase), axes=1))
    inside = field > np.quantile(field, 1.0 - fill)
    return np.where(inside, eps_in, eps_out).astype(np.float64)


def sample_level_set_cell(rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """Target cell (docs/method.md): random 9-term Fourier level set, fill ~ U(0.01, 0.99), ε ~ U(1, 20).

    Draw order (fixed, so a seed reproduces a cell): r[9] ~ U(0,1), φ[9] ~ U(0,2π), fill,
    ε_in, ε_out.
    """
    r = rng.uniform(0.0, 1.0, len(_HARMONICS))
    phi = rng.uniform(0.0, 2.0 * np.pi, len(_HARMONICS))
    fill = rng.uniform(0.01, 0.99)
    eps_in, eps_out = rng.uniform(*EPS_RANGE, size=2)
    return level_set_cell(r * np.exp(1j * phi), fill, eps_in, eps_out, n)


def rod_cell(radius: float, eps_in: float, eps_out: float, n: int = 32) -> np.ndarray:
    """Circular rod of ``radius`` (units of a) centred at the origin x = y = 0.

    A pixel is ``eps_in`` iff its centre is strictly inside the circle: the cell stays
    two-valued like the targets, and it is exactly C4v-symmetric about the origin on the
    pixel grid (which the 'c4v' k-point reduction of the solver relies on).  For even n the
    origin is the centre of pixel (n/2, n/2), so even the smallest rod is one pixel.
    """
    x, y = pixel_centres(n)
    return np.where(x**2 + y**2 < radius**2, eps_in, eps_out).astype(np.float64)


def sample_rod_cell(rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """Surrogate cell (docs/method.md): one centred rod, radius ~ U(0, 0.5], ε_in, ε_out ~ U(1, 20).

    Draw order: radius, ε_in, ε_out.  ``0.5 - U[0, 0.5)`` gives the half-open (0, 0.5].
    """
    radius = 0.5 - rng.uniform(0.0, 0.5)
    eps_in, eps_out = rng.uniform(*EPS_RANGE, size=2)
    return rod_cell(radius, eps_in, eps_out, n)
