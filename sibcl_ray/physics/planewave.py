"""TM bands of a 2D square-lattice photonic crystal by plane-wave expansion.

TM (E along z): |k+G|² E_G = f² Σ_G' ε_{G-G'} E_G', with f = ωa/2πc and k, G in units
of 2π/a.  With D = diag|k+G| and u = D E this is the Hermitian positive semidefinite
problem A u = f² u, A = D M D, M = [ε]⁻¹, where [ε] is the Toeplitz matrix of the
Fourier coefficients of ε (the "generalised" or Laurent form).  M is inverted once per
cell; each k costs one dense Hermitian eigensolve.  The inverse rule ([1/ε] instead of
[ε]⁻¹) converges far too slowly for TM (SIBCL.md), and complex64 is off by up to 3e-2
near Γ, so everything here is float64/complex128.

Fourier coefficients: the DFT of the pixel image, ε_n = (-1)^{n1+n2} DFT[n mod N] / N²
(the sign is the half-cell offset of the pixel centres -0.5 + i/N).  This is ε sampled on
the pixel centres, which is what MPB sees at resolution N when its material function
returns the nearest pixel; the exact Fourier coefficients of the piecewise-constant image
(the DFT times sinc(n1/N) sinc(n2/N)) are available for comparison (``pixel_form_factor``).
The DFT form needs plane_waves <= N (for larger bases the Toeplitz matrix of a sampled
function turns singular); the exact form has no such limit.

Group velocities come from Hellmann–Feynman, dλ/dk = u† (∂A/∂k) u = 2 Re (∂D u)† M D u,
df/dk = (dλ/dk)/(2f), with degenerate eigenvalues resolved by diagonalising the velocity
operator inside the degenerate subspace (exact for the empty lattice; symmetry-enforced
degeneracies of C4v cells at Γ have zero velocity in any basis).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = [
    "DEFAULT_PLANE_WAVES",
    "plane_wave_indices",
    "epsilon_fourier",
    "inverse_epsilon_matrix",
    "tm_bands",
    "tm_modes_below",
]

DEFAULT_PLANE_WAVES = 11
"""Plane waves per axis (11×11 = 121): ~1e-4 mean band error vs MPB res 32 at ~0.3 s per
313-k-point label on one core; see benchmarks/bench_photonic.py."""

_DEGENERACY_RTOL = 1e-9
"""Eigenvalues closer than this (relative to max(λ, 1)) are one degenerate level; numerical
splitting of exact degeneracies is ~1e-14, physical near-degeneracies are far larger."""

_ZERO_RTOL = 1e-12
"""λ below this fraction of max diag(A) is rounding noise of a zero eigenvalue (the next
eigenvalue at Γ is ~|G|²/ε_max ~ 0.05·max diag(A) or larger)."""

_EXTRA_BANDS = 4
"""Eigenpairs computed beyond those returned, so a degenerate level straddling the last
returned band (up to 4-fold in the empty lattice) is resolved as a whole."""

_SPLIT_MIX = 0.6180339887498949
"""Generic mixing ratio: a degenerate level is diagonalised in Vx + _SPLIT_MIX·Vy, which
yields the joint eigenbasis whenever Vx and Vy commute (e.g. the empty lattice)."""


def plane_wave_indices(plane_waves: int) -> np.ndarray:
    """Integer reciprocal vectors (n1, n2), |n_i| <= plane_waves // 2, shape (plane_waves², 2)."""
    if plane_waves < 1 or plane_waves % 2 == 0:
        raise ValueError(f"plane_waves must be odd and positive, got {plane_waves}")
    m = plane_waves // 2
    n1, n2 = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    return np.stack([n1.ravel(), n2.ravel()], axis=1)


def epsilon_fourier(eps: np.ndarray, n: np.ndarray, *, pixel_form_factor: bool = False) -> np.ndarray:
    """Fourier coefficients ε_n = ∫_cell ε(r) e^{-2πi n·r} d²r for integer vectors n[..., 2].

    Default: the DFT of the pixel values (ε sampled at the pixel centres).  With
    ``pixel_form_factor`` the exact coefficients of the piecewise-constant image.
    """
    eps = np.asarray(eps, dtype=np.float64)
    size = eps.shape[0]
    if eps.ndim != 2 or eps.shape[1] != size:
        raise ValueError(f"eps must be a square 2D array, got shape {eps.shape}")
    spectrum = np.fft.fft2(eps) / eps.size
    n1, n2 = n[..., 0], n[..., 1]
    coeff = spectrum[n1 % size, n2 % size] * np.where((n1 + n2) % 2 == 0, 1.0, -1.0)
    if pixel_form_factor:
        coeff = coeff * np.sinc(n1 / size) * np.sinc(n2 / size)
    return coeff


def inverse_epsilon_matrix(eps: np.ndarray, plane_waves: int) -> np.ndarray:
    """M = [ε]⁻¹ for the plane_waves² basis of `plane_wave_indices`.

    Returned real when the cell is inversion-symmetric about the origin (ε_n real), which
    halves the cost of every eigensolve for such cells (centred rods).
    """
    if plane_waves > np.shape(eps)[0]:
        raise ValueError(f"plane_waves={plane_waves} exceeds the image resolution {np.shape(eps)[0]}")
    g = plane_wave_indices(plane_waves)
    toeplitz = epsilon_fourier(eps, g[:, None, :] - g[None, :, :])
    if np.abs(toeplitz.imag).max() <= 1e-14 * np.abs(toeplitz.real).max():
        toeplitz = toeplitz.real
    inverse = scipy.linalg.inv(toeplitz, check_finite=False)
    return (inverse + inverse.conj().T) / 2


def _velocities(m: np.ndarray, kg: np.ndarray, lam: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """df/dk (n, 2) of the eigenpairs (lam[n], vectors[:, n]) of D M D at one k.

    ``kg`` = k + G (P, 2).  ∂D/∂k = (k+G)/|k+G|, set to 0 where k+G = 0 (that component of
    every eigenvector with f > 0 vanishes, and f = 0 gets velocity 0).
    """
    d = np.hypot(kg[:, 0], kg[:, 1])
    dd = np.divide(kg, d[:, None], out=np.zeros_like(kg), where=d[:, None] > 0)
    mdu = m @ (d[:, None] * vectors)
    # v_op[a, n, n'] = 2 Re-symmetrised (∂_a D u_n)† M D u_n', the velocity operator in the band basis.
    half = np.einsum("pa,pn,pm->anm", dd, vectors.conj(), mdu)
    v_op = half + half.conj().transpose(0, 2, 1)
    dlam = _diagonal_in_degenerate_levels(lam, v_op)
    f = np.sqrt(np.maximum(lam, 0.0))
    return np.divide(dlam, 2 * f[:, None], out=np.zeros_like(dlam), where=f[:, None] > 0)


def _diagonal_in_degenerate_levels(lam: np.ndarray, v_op: np.ndarray) -> np.ndarray:
    """dλ/dk (n, 2): diagonal of the velocity operator, degenerate levels rotated first."""
    dlam = np.real(np.einsum("ann->na", v_op))
    gaps = np.diff(lam) > _DEGENERACY_RTOL * np.maximum(np.abs(lam[1:]), 1.0)
    starts = np.concatenate([[0], np.flatnonzero(gaps) + 1])
    ends = np.concatenate([starts[1:], [len(lam)]])
    for lo, hi in zip(starts, ends):
        if hi - lo > 1:
            block = v_op[:, lo:hi, lo:hi]
            _, basis = np.linalg.eigh(block[0] + _SPLIT_MIX * block[1])
            dlam[lo:hi] = np.real(np.einsum("in,aij,jn->na", basis.conj(), block, basis))
    return dlam


def _eigenpairs(m: np.ndarray, kg: np.ndarray, **subset) -> tuple[np.ndarray, np.ndarray]:
    """Lowest eigenpairs of A = D M D at one k (``subset_by_index`` or ``subset_by_value``).

    Eigenvalues within rounding noise of zero (only the f = 0 mode at Γ) are set to exactly 0,
    so that f = 0 there rather than √(1e-16·|A|) ~ 1e-7.
    """
    d = np.hypot(kg[:, 0], kg[:, 1])
    a = d[:, None] * m * d[None, :]
    noise = _ZERO_RTOL * np.abs(np.diagonal(a)).max()
    lam, vectors = scipy.linalg.eigh(a, driver="evr", check_finite=False, overwrite_a=True, **subset)
    return np.where(lam < noise, 0.0, lam), vectors


def _k_plus_g(kpoints: np.ndarray, plane_waves: int) -> np.ndarray:
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 2)
    return kpoints[:, None, :] + plane_wave_indices(plane_waves)[None, :, :]


def tm_bands(
    eps: np.ndarray,
    kpoints: np.ndarray,
    n_bands: int = 10,
    *,
    plane_waves: int | None = None,
    return_group_velocity: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """TM frequencies f = ωa/2πc, ascending, shape (K, n_bands); optionally df/dk (K, n_bands, 2).

    ``eps`` is an N×N image (pixel (i, j) centred at (-0.5 + i/N, -0.5 + j/N)), ``kpoints``
    (K, 2) in units of 2π/a, ``plane_waves`` the number of G per axis (odd, <= N;
    default `DEFAULT_PLANE_WAVES`).
    """
    plane_waves = DEFAULT_PLANE_WAVES if plane_waves is None else plane_waves
    m = inverse_epsilon_matrix(eps, plane_waves)
    n_solve = min(n_bands + (_EXTRA_BANDS if return_group_velocity else 0), plane_waves**2)
    freqs, vels = [], []
    for kg in _k_plus_g(kpoints, plane_waves):
        lam, vectors = _eigenpairs(m, kg, subset_by_index=(0, n_solve - 1))
        freqs.append(np.sqrt(np.maximum(lam[:n_bands], 0.0)))
        if return_group_velocity:
            vels.append(_velocities(m, kg, lam, vectors)[:n_bands])
    if return_group_velocity:
        return np.array(freqs), np.array(vels)
    return np.array(freqs)


def tm_modes_below(
    eps: np.ndarray, kpoints: np.ndarray, f_max: float, *, plane_waves: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every TM mode with f <= f_max at each k: (f, df/dk), padded with f = inf, v = 0.

    Shapes (K, B) and (K, B, 2), B the largest count over k.  This is what a density of
    states needs: all states in a frequency window, not a fixed number of bands.
    """
    plane_waves = DEFAULT_PLANE_WAVES if plane_waves is None else plane_waves
    m = inverse_epsilon_matrix(eps, plane_waves)
    freqs, vels = [], []
    for kg in _k_plus_g(kpoints, plane_waves):
        lam, vectors = _eigenpairs(m, kg, subset_by_value=(-np.inf, f_max**2))
        freqs.append(np.sqrt(np.maximum(lam, 0.0)))
        vels.append(_velocities(m, kg, lam, vectors))
    width = max(len(f) for f in freqs)
    f_out = np.full((len(freqs), width), np.inf)
    v_out = np.zeros((len(freqs), width, 2))
    for row, (f, v) in enumerate(zip(freqs, vels)):
        f_out[row, : len(f)] = f
        v_out[row, : len(f)] = v
    return f_out, v_out
