"""TM bands of a 2D square-lattice photonic crystal by plane-wave expansion.

TM (E along z): |k+G|² E_G = f² Σ_G' ε_{G-G'} E_G', with f = ωa/2πc and k, G in units
of 2π/a.  With D = diag|k+G| and u = D E this is the Hermitian positive semidefinite
problem A u = f² u, A = D M D, M = [ε]⁻¹, where [ε] is the Toeplitz matrix of the
Fourier coefficients of ε (the "generalised" or Laurent form).  M is inverted once per
cell; each k costs one dense Hermitian eigensolve.  The inverse rule ([1/ε] instead of
[ε]⁻¹) converges far too slowly for TM (docs/method.md), and complex64 is off by up to 3e-2
near Γ, so everything here is float64/complex128.

Fourier coefficients: the DFT of the pixel image, ε_n = (-1)^{n1+n2} DFT[n mod N] / N²
(the sign is the half-cell offset of the pixel centres -0.5 + i/N).  This is ε sampled on
the pixel centres, which is what MPB sees at resolution N when its material function
returns the nearest pixel; the exact Fourier coefficients of the piecewise-constant image
(the DFT times sinc(n1/N) sinc(n2/N)) are available for comparison (``pixel_form_factor``).
The DFT form needs plane_waves <= N (for larger bases the Toeplitz matrix of a sampled
function turns singular); the exact form has no such limit.

Many k-points per cell (the labels): the problem is projected once per cell on Shirley's
optimal basis (`reduced_model`: the lowest fields at 17 sample k-points, [ε]-orthonormalised).
For a label only the fields of the modes below its cutoff (+ _SAMPLE_GUARD) enter the basis,
R ~ 35-60 vectors.  Since |k+G|² is quadratic in k, the projected R×R operator is exact in
k; every k-point then costs one small eigensolve for the few lowest pairs (LAPACK heevr);
the bands match the full basis to ~1e-6 relative (max), ~2e-8 (mean), while a 15×15 label
costs ~0.09 s on one core (the 9 full sample solves ~35%, the 313 small ones ~45%).
`tm_bands` always solves the full basis directly.

Group velocities come from Hellmann–Feynman, dλ/dk = u† (∂A/∂k) u = 2 Re (∂D u)† M D u,
df/dk = (dλ/dk)/(2f), with degenerate eigenvalues resolved by diagonalising the velocity
operator inside the degenerate subspace (exact for the empty lattice; symmetry-enforced
degeneracies of C4v cells at Γ have zero velocity in any basis).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

__all__ = [
    "DEFAULT_PLANE_WAVES",
    "plane_wave_indices",
    "epsilon_fourier",
    "inverse_epsilon_matrix",
    "epsilon_matrix",
    "tm_bands",
    "tm_modes_below",
    "SAMPLE_K",
    "REDUCED_MIN_PLANE_WAVES",
    "ReducedModel",
    "reduced_model",
    "reduced_tm_bands",
]

DEFAULT_PLANE_WAVES = 15
"""Plane waves per axis (15×15 = 225): ~1.4e-4 mean band error vs MPB res 32 (11×11: 2.8e-4),
~0.09 s per 313-k-point DOS label on one core through the `reduced_model`; see
benchmarks/bench_photonic.py."""

_DEGENERACY_RTOL = 1e-9
"""Eigenvalues closer than this (relative to max(λ, 1)) are one degenerate level; numerical
splitting of exact degeneracies is ~1e-14, physical near-degeneracies are far larger."""

_ZERO_RTOL = 1e-12
"""λ below this fraction of max diag(A) is rounding noise of a zero eigenvalue (the next
eigenvalue at Γ is ~|G|²/ε_max ~ 0.05·max diag(A) or larger)."""

_REDUCED_ZERO_RTOL = 1e-9
"""The same for the reduced model, whose [ε]-orthonormalisation leaves ~1e-10·max diag(H)
on the zero eigenvalue (the next one, at k = 0.04, is ~1e-6·max diag(H) or larger)."""

_EXTRA_BANDS = 4
"""Eigenpairs computed beyond those returned, so a degenerate level straddling the last
returned band (up to 4-fold in the empty lattice) is resolved as a whole."""

_SAMPLE_STEPS = (-0.375, -0.125, 0.125, 0.375)
SAMPLE_K = np.array([(0.0, 0.0)] + [(a, b) for a in _SAMPLE_STEPS[2:] for b in _SAMPLE_STEPS])
"""k-points solved exactly to build the `reduced_model` basis: Γ and the 8 points of the
4×4 grid {±1/8, ±3/8}² with kx > 0; their -k partners come free by time reversal, so the
17-point set is invariant under C4v and inversion."""

REDUCED_MIN_PLANE_WAVES = 13
"""Below this basis size (169) per-k dense solves of the full basis are as cheap as the
reduced model (whose size R ~ 70-90 is set by the samples, not the basis)."""

_SAMPLE_BANDS = 12
"""Fields solved per sample k (doubled while fewer than needed): the DOS label needs ~4-6 modes
below f̃ ≈ 1.1 on random cells; only those + _SAMPLE_GUARD enter the basis."""

_SAMPLE_GUARD = 2
"""Sampled bands kept above the highest band used (modes below f_max at any sample or any k):
the basis then reproduces the used bands to ~1e-6 relative at worst, ~2e-8 on average
(12 random cells, 15×15, vs direct solves; a guard of 6 gave the same, R ~ 70 instead of ~45)."""

_BASIS_RTOL = 1e-9
"""Gram eigenvalues below this fraction of the largest are dropped (linear dependence)."""

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
    inverse = scipy.linalg.inv(epsilon_matrix(eps, plane_waves), check_finite=False)
    return (inverse + inverse.conj().T) / 2


def epsilon_matrix(eps: np.ndarray, plane_waves: int) -> np.ndarray:
    """The Toeplitz matrix [ε]_{GG'} = ε_{G-G'} (real for inversion-symmetric cells)."""
    if plane_waves > np.shape(eps)[0]:
        raise ValueError(f"plane_waves={plane_waves} exceeds the image resolution {np.shape(eps)[0]}")
    g = plane_wave_indices(plane_waves)
    toeplitz = epsilon_fourier(eps, g[:, None, :] - g[None, :, :])
    if np.abs(toeplitz.imag).max() <= 1e-14 * np.abs(toeplitz.real).max():
        return toeplitz.real
    return toeplitz


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


class ReducedModel(NamedTuple):
    """The TM problem projected on a k-independent basis Q with Q† [ε] Q = I (R columns).

    |k+G|² = |G|² + 2k·G + |k|² is quadratic in k, so the projected operator is
    H(k) = h0 + kx·hx + ky·hy + |k|²·s exactly, with R×R matrices computed once per cell.
    """

    h0: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    s: np.ndarray


def _sample_fields(eps: np.ndarray, plane_waves: int, n_sample: int, sample_k: np.ndarray) -> tuple:
    """[ε] and, at each sample k, the n_sample lowest λ and fields E = M D u ([ε]-normalised)."""
    toeplitz = epsilon_matrix(eps, plane_waves)
    m = scipy.linalg.inv(toeplitz, check_finite=False)
    m = (m + m.conj().T) / 2
    n_sample = min(n_sample, plane_waves**2)
    samples = []
    for kg in _k_plus_g(sample_k, plane_waves):
        lam, u = _eigenpairs(m, kg, subset_by_index=(0, n_sample - 1))
        e = m @ (np.hypot(kg[:, 0], kg[:, 1])[:, None] * u)
        norm = np.sqrt(np.real(np.sum(e.conj() * (toeplitz @ e), axis=0)))
        samples.append((lam, e / np.where(norm > 0, norm, 1.0)))
    return toeplitz, samples


def _project(toeplitz: np.ndarray, samples: list, n_keep: int, plane_waves: int) -> ReducedModel:
    """The reduced model on the span of the n_keep lowest sampled fields (+ -k partners, + constant)."""
    g = plane_wave_indices(plane_waves).astype(np.float64)
    constant = (np.abs(g).sum(axis=1) == 0)[:, None].astype(np.float64)
    fields = [constant]  # the f = 0 field at Γ, which E = M D u maps to zero
    for lam, e in samples:
        e = e[:, :n_keep]
        e = e[:, np.abs(e).max(axis=0) > 0]
        fields += [e, e[::-1].conj()]
    v = np.concatenate(fields, axis=1)
    w, rot = np.linalg.eigh(v.conj().T @ toeplitz @ v)
    keep = w > _BASIS_RTOL * w.max()
    q = v @ (rot[:, keep] / np.sqrt(w[keep]))
    qh = q.conj().T
    return ReducedModel(
        h0=qh @ (np.sum(g**2, axis=1)[:, None] * q),
        hx=qh @ (2 * g[:, :1] * q),
        hy=qh @ (2 * g[:, 1:] * q),
        s=qh @ q,
    )


def reduced_model(eps: np.ndarray, plane_waves: int, n_sample: int) -> ReducedModel:
    """Shirley's optimal basis: span of the n_sample lowest fields at `SAMPLE_K`, orthonormalised.

    Fields E = M D u at the sampled k (their -k partners by time reversal, E_{-k}(G) =
    conj E_k(-G), which is the reversed, conjugated vector in `plane_wave_indices` order)
    and the constant field, each normalised in the [ε] metric, then orthonormalised in it
    with directions of relative weight < _BASIS_RTOL dropped.  Because the sample set is
    C4v- and inversion-symmetric, so is the basis, and the labels keep their exact
    invariances.  Rayleigh–Ritz is variational: reduced eigenvalues are upper bounds.
    """
    toeplitz, samples = _sample_fields(eps, plane_waves, n_sample, SAMPLE_K)
    return _project(toeplitz, samples, n_sample, plane_waves)


def _reduced_eigh(model: ReducedModel, kpoints: np.ndarray, n_eig: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lowest n_eig (default all) eigenpairs of H(k) per k: λ (K, n) ascending, vectors (K, R, n).

    All of them by one batched eigh; a subset by LAPACK heevr per k (only the wanted
    eigenvectors are back-transformed: ~20% faster at R ~ 45, n ~ 6).
    """
    kx, ky = kpoints[:, 0, None, None], kpoints[:, 1, None, None]
    h = model.h0 + kx * model.hx + ky * model.hy + (kx**2 + ky**2) * model.s
    size = h.shape[-1]
    if n_eig is None or n_eig >= size:
        lam, c = np.linalg.eigh(h)
    else:
        lam = np.empty((len(h), n_eig))
        c = np.empty((len(h), size, n_eig), dtype=h.dtype)
        heevr = scipy.linalg.lapack.zheevr if np.iscomplexobj(h) else scipy.linalg.lapack.dsyevr
        for row, hk in enumerate(h):
            w, z, m, _, info = heevr(hk, compute_v=1, range="I", il=1, iu=n_eig)
            if info != 0 or m != n_eig:
                raise np.linalg.LinAlgError(f"heevr failed (info={info}, found {m} of {n_eig})")
            lam[row], c[row] = w[:n_eig], z[:, :n_eig]
    noise = _REDUCED_ZERO_RTOL * np.abs(np.diagonal(h, axis1=1, axis2=2)).max(axis=1, keepdims=True)
    return np.where(lam < noise, 0.0, lam), c


def _reduced_velocities(model: ReducedModel, kpoints: np.ndarray, lam: np.ndarray, c: np.ndarray) -> np.ndarray:
    """df/dk (K, n, 2) of the eigenpairs (lam (K, n), c (K, R, n)): dλ/dk = c† ∂H c."""
    kx, ky = kpoints[:, 0, None, None], kpoints[:, 1, None, None]
    ch = c.conj().transpose(0, 2, 1)
    sc = model.s @ c
    v_op = np.stack([ch @ (model.hx @ c + 2 * kx * sc), ch @ (model.hy @ c + 2 * ky * sc)], axis=1)
    dlam = np.real(np.einsum("kann->kna", v_op))
    gaps = np.diff(lam, axis=1) > _DEGENERACY_RTOL * np.maximum(np.abs(lam[:, 1:]), 1.0)
    for row in np.flatnonzero(~gaps.all(axis=1)):  # k-points with a degenerate level (e.g. Γ)
        dlam[row] = _diagonal_in_degenerate_levels(lam[row], v_op[row])
    f = np.sqrt(lam)
    return np.divide(dlam, 2 * f[..., None], out=np.zeros_like(dlam), where=f[..., None] > 0)


def _adaptive_reduced_eigh(eps: np.ndarray, kpoints: np.ndarray, f_max: float, plane_waves: int) -> tuple:
    """The reduced model with _SAMPLE_GUARD sampled bands above every mode f <= f_max, solved at kpoints.

    The sample solves return _SAMPLE_BANDS fields (doubled while too few); the basis keeps
    only the lowest (modes below f_max at any sample) + _SAMPLE_GUARD of them, enlarged if
    some k has more modes below f_max than that.
    """
    size = plane_waves**2
    n_solve = min(_SAMPLE_BANDS, size)
    while True:
        toeplitz, samples = _sample_fields(eps, plane_waves, n_solve, SAMPLE_K)
        n_keep = min(max(int((lam <= f_max**2).sum()) for lam, _ in samples) + _SAMPLE_GUARD, size)
        while n_keep <= n_solve:
            model = _project(toeplitz, samples, n_keep, plane_waves)
            lam, c = _reduced_eigh(model, kpoints, n_keep)
            width = int((lam <= f_max**2).sum(axis=1).max())
            if width + _SAMPLE_GUARD <= min(n_keep, lam.shape[1]) or n_solve == size:
                return model, lam, c, width
            if width + _SAMPLE_GUARD <= n_keep:
                break  # the basis (rank-deficient samples) is too small: sample more bands
            n_keep = min(width + _SAMPLE_GUARD, size)
        n_solve = min(2 * n_solve, size)


def tm_modes_below(
    eps: np.ndarray, kpoints: np.ndarray, f_max: float, *, plane_waves: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every TM mode with f <= f_max at each k: (f, df/dk), padded with f = inf, v = 0.

    Shapes (K, B) and (K, B, 2), B the largest count over k.  This is what a density of
    states needs: all states in a frequency window, not a fixed number of bands.  From
    REDUCED_MIN_PLANE_WAVES on, solved in the `reduced_model` (<= ~1e-6 relative to the full
    basis, far below its truncation error), with _SAMPLE_GUARD sampled bands above the
    highest mode kept (the sample count doubles until that holds); below, by per-k dense
    solves of the full basis.
    """
    plane_waves = DEFAULT_PLANE_WAVES if plane_waves is None else plane_waves
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 2)
    if plane_waves < REDUCED_MIN_PLANE_WAVES:
        return _pad(_direct_modes_below(eps, kpoints, f_max, plane_waves))
    model, lam, c, width = _adaptive_reduced_eigh(eps, kpoints, f_max, plane_waves)
    lam = lam[:, :width]
    v = _reduced_velocities(model, kpoints, lam, c[:, :, :width])
    below = lam <= f_max**2
    return np.where(below, np.sqrt(lam), np.inf), np.where(below[..., None], v, 0.0)


def _direct_modes_below(eps: np.ndarray, kpoints: np.ndarray, f_max: float, plane_waves: int) -> list:
    """Per-k dense solves of the full basis: (f, v) per k, ragged."""
    m = inverse_epsilon_matrix(eps, plane_waves)
    modes = []
    for kg in _k_plus_g(kpoints, plane_waves):
        lam, vectors = _eigenpairs(m, kg, subset_by_value=(-np.inf, f_max**2))
        modes.append((np.sqrt(lam), _velocities(m, kg, lam, vectors)))
    return modes


def _pad(modes: list) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-k (f, v) -> (K, B) and (K, B, 2) arrays padded with f = inf, v = 0."""
    width = max(len(f) for f, _ in modes)
    f_out = np.full((len(modes), width), np.inf)
    v_out = np.zeros((len(modes), width, 2))
    for row, (f, v) in enumerate(modes):
        f_out[row, : len(f)] = f
        v_out[row, : len(f)] = v
    return f_out, v_out


def reduced_tm_bands(eps: np.ndarray, kpoints: np.ndarray, n_bands: int, *, plane_waves: int | None = None) -> np.ndarray:
    """`tm_bands` (frequencies only) through the `reduced_model`: for many k-points per cell."""
    plane_waves = DEFAULT_PLANE_WAVES if plane_waves is None else plane_waves
    if plane_waves < REDUCED_MIN_PLANE_WAVES:
        return tm_bands(eps, kpoints, n_bands, plane_waves=plane_waves)
    model = reduced_model(eps, plane_waves, n_bands + _SAMPLE_GUARD)
    kpoints = np.asarray(kpoints, dtype=np.float64).reshape(-1, 2)
    return np.sqrt(_reduced_eigh(model, kpoints)[0][:, :n_bands])
