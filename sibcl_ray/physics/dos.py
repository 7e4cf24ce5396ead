"""The `phc` labels: normalised TM density of states and band frequencies on KGRID.

DOS by the generalised Gilat–Raubenheimer method (Liu, Johnson, Joannopoulos, Lu,
J. Opt. 20, 034001, 2018): the Brillouin zone is tiled by the 25×25 squares of side
0.04 centred on the KGRID points, and in each square every band is replaced by its
linear extrapolation f0 + v·q from the centre.  For a square of half-side h the
contribution is exactly the density of f0 + U(-|vx|h, |vx|h) + U(-|vy|h, |vy|h): the
length of the iso-frequency line inside the square divided by |v| and the square's
area, a trapezoid in f.  Its closed-form CDF is integrated over each frequency bin, so
the raw label is the exact bin average of the piecewise-linear-band DOS.

Normalisation (docs/method.md): f̃ = f·√ε̄ (ε̄ = mean ε), DOS per unit cell and per unit f̃
(= DOS per unit f divided by √ε̄), one polarisation, so that the empty lattice gives
2πf̃.  The label is invariant under translations, C4v and ε → sε.
"""

from __future__ import annotations

import numpy as np

from sibcl_ray.physics.planewave import DEFAULT_PLANE_WAVES, reduced_tm_bands, tm_modes_below

__all__ = [
    "KGRID",
    "FTILDE",
    "METRIC_MASK",
    "DEFAULT_SMOOTHING",
    "TARGET_LABEL_OPTS",
    "SURROGATE_LABEL_OPTS",
    "reduced_kgrid",
    "ggr_dos",
    "dos_label",
    "dos_labels",
    "bands_label",
]

_K_STEP = 0.04
_K_INDEX = np.arange(-12, 13)
KGRID = np.stack(np.meshgrid(_K_INDEX * _K_STEP, _K_INDEX * _K_STEP, indexing="ij"), -1).reshape(-1, 2)
"""(625, 2): k = -0.48 … 0.48 step 0.04 (units 2π/a), KGRID[25 i + j] = (k_i, k_j)."""

_F_STEP = 0.0024
FTILDE = np.arange(400) * _F_STEP
"""(400,): the normalised frequency grid f̃ = f√ε̄ = 0 … 0.9576 step 0.0024."""

METRIC_MASK = (FTILDE >= 0.24 - 1e-12) & (FTILDE <= 0.96)
"""Points 100..399 (f̃ ∈ [0.24, 0.96]) on which the `phc` error is measured."""

DEFAULT_SMOOTHING = 2 * _F_STEP
"""Gaussian σ in f̃ (2 bins).  The piecewise-linear band model leaves kinks and steps of
height ~1/(625·|v|·0.04) where iso-frequency lines cross cell corners; σ = 2 bins removes
them while staying far below the ~0.05-wide features of real DOS (van Hove peaks, gaps)."""

_SYMMETRIES = ("time_reversal", "c4v")


def _canonical(p: np.ndarray, q: np.ndarray, symmetry: str) -> tuple[np.ndarray, np.ndarray]:
    """Representative of the orbit of the grid indices (p, q) under the symmetry group."""
    if symmetry == "time_reversal":
        flip = (p < 0) | ((p == 0) & (q < 0))
        return np.where(flip, -p, p), np.where(flip, -q, q)
    if symmetry == "c4v":
        return np.maximum(np.abs(p), np.abs(q)), np.minimum(np.abs(p), np.abs(q))
    raise ValueError(f"symmetry must be one of {_SYMMETRIES}, got {symmetry!r}")


def reduced_kgrid(symmetry: str = "time_reversal", k_points: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Irreducible points of the ``k_points``×``k_points`` grid, their orbit sizes, and the map
    grid index -> reduced index.

    The grid is the N×N squares of side 1/N tiling the Brillouin zone, centred on k = j/N,
    |j| <= (N-1)/2 (N odd, so that Γ is a point); N = 25 is KGRID.  'time_reversal'
    (ω(k) = ω(-k), any cell): (N² + 1)/2 points, 313 for KGRID.  'c4v' (cells symmetric under the
    square's point group; with time reversal ω is invariant under all 8 operations about any
    origin): the points 0 <= ky <= kx, 91 for KGRID.  Weights sum to N².
    """
    if k_points < 1 or k_points % 2 == 0:
        raise ValueError(f"k_points must be a positive odd number, got {k_points}")
    half = k_points // 2
    index = np.arange(-half, half + 1)
    p, q = np.meshgrid(index, index, indexing="ij")
    cp, cq = _canonical(p.ravel(), q.ravel(), symmetry)
    code = (cp + half) * k_points + (cq + half)
    unique, inverse, counts = np.unique(code, return_inverse=True, return_counts=True)
    points = np.stack([unique // k_points - half, unique % k_points - half], axis=1) * (1.0 / k_points)
    return points, counts.astype(np.float64), inverse


def _check_c4v(eps: np.ndarray) -> None:
    """Reject cells whose |DFT| is not C4v-symmetric (a translation-invariant necessary test).

    The 'c4v' reduction silently gives a wrong label for a cell without the symmetry; the
    check costs one FFT.
    """
    spectrum = np.abs(np.fft.fft2(eps))
    mirrored = np.roll(np.flip(spectrum, 0), 1, axis=0)
    scale = 1e-9 * spectrum.max()
    if np.abs(spectrum - spectrum.T).max() > scale or np.abs(spectrum - mirrored).max() > scale:
        raise ValueError("symmetry='c4v' needs a C4v-symmetric cell (e.g. a centred rod)")


def _trapezoid_cdf(e: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CDF at e of U(-a, a) + U(-b, b) for a >= b >= 0 (a delta at 0 when a = 0).

    Piecewise form (no cancellation as b -> 0): quadratic rise on [-a-b, -a+b], linear on
    [-a+b, a-b], quadratic approach to 1 on [a-b, a+b].
    """
    ab8 = np.maximum(8 * a * b, np.finfo(float).tiny)
    rise = (e + a + b) ** 2 / ab8
    linear = (e + a) / np.maximum(2 * a, np.finfo(float).tiny)
    fall = 1 - (a + b - e) ** 2 / ab8
    return np.select(
        [e <= -a - b, e <= -a + b, e <= a - b, e < a + b],
        [0.0, rise, linear, fall],
        1.0,
    )


def ggr_dos(
    f: np.ndarray, v: np.ndarray, weights: np.ndarray, edges: np.ndarray, half_cell: float
) -> np.ndarray:
    """Bin-averaged Gilat–Raubenheimer DOS, Σ_states weight · P(state in bin) / bin width.

    ``f`` (S,), ``v`` (S, 2) the band values and gradients at the cell centres, ``weights``
    (S,) each state's weight, ``edges`` (B+1,) uniform bin edges, ``half_cell`` the half-side
    of the square k-cells.  States are evaluated only on the bins their trapezoid reaches.
    """
    spread = np.sort(np.abs(v) * half_cell, axis=1)
    a, b = spread[:, 1], spread[:, 0]
    step = edges[1] - edges[0]
    first = np.floor((f - a - b - edges[0]) / step).astype(int)
    window = int(np.ceil(2 * (a + b).max() / step)) + 2 if len(f) else 0
    idx = first[:, None] + np.arange(window + 1)
    inside = (idx >= 0) & (idx < len(edges))
    e = edges[np.clip(idx, 0, len(edges) - 1)] - f[:, None]
    cdf = _trapezoid_cdf(e, a[:, None], b[:, None])
    mass = np.diff(cdf, axis=1) * weights[:, None]
    bins = idx[:, :-1]
    keep = inside[:, :-1] & inside[:, 1:]
    dos = np.bincount(bins[keep], weights=mass[keep], minlength=len(edges) - 1)
    return dos / step


def _gaussian_kernel(sigma_bins: float) -> np.ndarray:
    half = int(np.ceil(4 * sigma_bins))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma_bins) ** 2)
    return kernel / kernel.sum()


def dos_label(
    eps: np.ndarray,
    *,
    plane_waves: int | None = None,
    symmetry: str = "time_reversal",
    smoothing: float = DEFAULT_SMOOTHING,
    k_points: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """(FTILDE, normalised TM DOS on FTILDE) of one cell, by generalised Gilat–Raubenheimer.

    ``k_points`` (odd) sets the k-grid: 25 is the label's KGRID; a coarser grid (larger squares,
    the same linear extrapolation in each) with fewer ``plane_waves`` is a cheaper, less exact
    DOS of the same cell (BENCHMARKS.md, "A cheap phc label").

    Bands are solved on the KGRID points irreducible under ``symmetry`` ('time_reversal' for
    any cell, 313 points; 'c4v' only for C4v-symmetric cells such as centred rods, 91
    points, ValueError when the cell's |DFT| lacks the symmetry) and weighted by orbit
    size.  ``smoothing`` is the σ of a Gaussian in f̃ applied to the bin averages (0
    disables it); the raw DOS is computed 4σ beyond both ends of the grid so that the
    smoothing has no edge effects.  The f = 0 mode at Γ (velocity 0) is a delta of weight
    1/625 at f̃ = 0, i.e. in the first bins, outside METRIC_MASK.

    Completeness: all modes that can reach the grid are included, not a fixed number of
    bands.  A mode contributes only within |v|·h√2 of its centre value (h = 0.02, half the
    k-step), and |v| <= 1/√ε_min (the group velocity never exceeds the slowest medium's
    light speed; the same bound holds for the discretised problem), so every mode with
    f <= (f̃_top/√ε̄ + √2·h/√ε_min) is solved at every k, whatever the band count.  The label
    is therefore complete up to the top of the grid (0.96 and beyond) for every cell.
    """
    eps = np.asarray(eps, dtype=np.float64)
    plane_waves = DEFAULT_PLANE_WAVES if plane_waves is None else plane_waves
    scale = np.sqrt(eps.mean())
    kernel = _gaussian_kernel(smoothing / _F_STEP) if smoothing > 0 else np.ones(1)
    pad = len(kernel) // 2
    centres = (np.arange(-pad, len(FTILDE) + pad)) * _F_STEP
    edges = np.append(centres - _F_STEP / 2, centres[-1] + _F_STEP / 2)
    half_cell = (1.0 / k_points) / 2
    f_cut = edges[-1] / scale + np.sqrt(2) * half_cell / np.sqrt(eps.min())

    if symmetry == "c4v":
        _check_c4v(eps)
    points, weights, _ = reduced_kgrid(symmetry, k_points)
    f, v = tm_modes_below(eps, points, f_cut, plane_waves=plane_waves)
    valid = np.isfinite(f)
    state_weights = np.broadcast_to(weights[:, None], f.shape)[valid] / k_points**2
    raw = ggr_dos(f[valid] * scale, v[valid] * scale, state_weights, edges, half_cell)
    return FTILDE.copy(), np.convolve(raw, kernel, mode="valid")


def dos_labels(eps_batch: np.ndarray, **opts) -> np.ndarray:
    """(B, 400) DOS labels of a batch of cells (`dos_label` keyword options).

    A plain loop: the per-k eigensolves dominate and batching across cells would not share them.
    """
    return np.array([dos_label(eps, **opts)[1] for eps in eps_batch])


def bands_label(eps: np.ndarray, *, plane_waves: int | None = None) -> np.ndarray:
    """(6, 625): the 6 lowest TM frequencies at every KGRID point (solved on the 313 TR-irreducible)."""
    points, _, inverse = reduced_kgrid("time_reversal")
    return reduced_tm_bands(eps, points, 6, plane_waves=plane_waves)[inverse].T


TARGET_LABEL_OPTS: dict = {"plane_waves": DEFAULT_PLANE_WAVES, "symmetry": "time_reversal"}
"""`dos_label` options for target (level-set) cells; see benchmarks/bench_photonic.py."""

SURROGATE_LABEL_OPTS: dict = {"plane_waves": 7, "symmetry": "c4v"}
"""`dos_label` options for centred-rod surrogate cells: 7×7 plane waves, direct real
eigensolves (rods are inversion-symmetric) on the 91-point C4v wedge: ~20× cheaper than a
target label, ~1e-3 DOS error vs 21×21."""
