"""Checks of the photonic-crystal physics (sibcl_ray.physics.photonic) against exact results."""

from __future__ import annotations

import numpy as np
import pytest

from sibcl_ray.physics import photonic as P

DOS_ATOL = 1e-6


def _empty_lattice_bands(kpoints: np.ndarray, eps: float, n_bands: int) -> np.ndarray:
    g = P.plane_wave_indices(21)
    return np.sort(np.linalg.norm(kpoints[:, None, :] + g[None], axis=2), axis=1)[:, :n_bands] / np.sqrt(eps)


def _antialiased_rod(n: int, radius: float, eps_in: float, eps_out: float, sub: int = 8) -> np.ndarray:
    """Rod drawn with area fractions (sub×sub samples per pixel), closer to a true circle."""
    offsets = (np.arange(sub) + 0.5) / (sub * n) - 0.5 / n
    c = (-0.5 + np.arange(n) / n)[:, None] + offsets[None, :]
    x, y = np.meshgrid(c.ravel(), c.ravel(), indexing="ij")
    fraction = (x**2 + y**2 < radius**2).reshape(n, sub, n, sub).mean(axis=(1, 3))
    return eps_out + (eps_in - eps_out) * fraction


@pytest.fixture(scope="module")
def cell() -> np.ndarray:
    return P.sample_level_set_cell(np.random.default_rng(7))


@pytest.fixture(scope="module")
def cell_label(cell: np.ndarray) -> np.ndarray:
    return P.dos_label(cell, plane_waves=7)[1]


# ---------------------------------------------------------------- grids


def test_grids() -> None:
    assert P.KGRID.shape == (625, 2)
    np.testing.assert_allclose(np.unique(P.KGRID[:, 0]), np.arange(-12, 13) * 0.04, atol=1e-15)
    np.testing.assert_array_equal(P.FTILDE, np.arange(400) * 0.0024)
    assert np.flatnonzero(P.METRIC_MASK).tolist() == list(range(100, 400))


@pytest.mark.parametrize("symmetry, count", [("time_reversal", 313), ("c4v", 91)])
def test_reduced_kgrid_covers_the_grid(symmetry: str, count: int) -> None:
    points, weights, inverse = P.reduced_kgrid(symmetry)
    assert len(points) == count and weights.sum() == 625
    np.testing.assert_array_equal(np.bincount(inverse), weights)
    # every grid point maps to a point of the same |k| (an image under the group)
    np.testing.assert_allclose(np.linalg.norm(points[inverse], axis=1), np.linalg.norm(P.KGRID, axis=1))


# ---------------------------------------------------------------- bands


def test_empty_lattice_bands_and_velocities() -> None:
    eps, k = 3.7, np.random.default_rng(0).uniform(-0.5, 0.5, (30, 2))
    f, v = P.tm_bands(np.full((16, 16), eps), k, 10, plane_waves=11, return_group_velocity=True)
    np.testing.assert_allclose(f, _empty_lattice_bands(k, eps, 10), atol=1e-10)
    g = P.plane_wave_indices(11)
    kg = k[:, None, :] + g[None]
    order = np.argsort(np.linalg.norm(kg, axis=2), axis=1)[:, :10]
    kg = np.take_along_axis(kg, order[..., None], axis=1)
    np.testing.assert_allclose(v, kg / np.linalg.norm(kg, axis=2, keepdims=True) / np.sqrt(eps), atol=1e-10)


def test_empty_lattice_degenerate_velocities_are_resolved() -> None:
    """At X the two lowest bands |k ± G| are degenerate; each must get its own cone slope."""
    f, v = P.tm_bands(np.full((8, 8), 2.0), np.array([[0.5, 0.1]]), 2, plane_waves=5, return_group_velocity=True)
    assert abs(f[0, 0] - f[0, 1]) < 1e-12
    expected = np.array([[-0.5, 0.1], [0.5, 0.1]]) / np.hypot(0.5, 0.1) / np.sqrt(2.0)
    np.testing.assert_allclose(v[0][np.argsort(v[0, :, 0])], expected, atol=1e-10)


def test_gamma_zero_frequency_has_zero_velocity(cell: np.ndarray) -> None:
    f, v = P.tm_bands(cell, np.zeros((1, 2)), 3, return_group_velocity=True)
    assert abs(f[0, 0]) < 1e-6 and np.all(v[0, 0] == 0)


def test_rod_lattice_gap_edges() -> None:
    """ε = 8.9, r = 0.2a rods: band 1 top at M = 0.3224, band 2 bottom at X = 0.4425 (docs/method.md)."""
    rods = _antialiased_rod(128, 0.2, 8.9, 1.0)
    f = P.tm_bands(rods, np.array([[0.5, 0.5], [0.5, 0.0]]), 2, plane_waves=21)
    assert abs(f[0, 0] / 0.3224 - 1) < 3e-3
    assert abs(f[1, 1] / 0.4425 - 1) < 3e-3


def test_group_velocity_matches_finite_differences(cell: np.ndarray) -> None:
    k = np.random.default_rng(1).uniform(-0.5, 0.5, (6, 2))
    f, v = P.tm_bands(cell, k, 8, plane_waves=9, return_group_velocity=True)
    h = 1e-5
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = h
        fd = (P.tm_bands(cell, k + step, 8, plane_waves=9) - P.tm_bands(cell, k - step, 8, plane_waves=9)) / (2 * h)
        np.testing.assert_allclose(v[..., axis], fd, atol=1e-6)


def test_group_velocity_bound_used_for_completeness(cell: np.ndarray) -> None:
    """|df/dk| <= 1/√ε_min, the bound dos_label uses to decide which modes can reach the grid."""
    _, v = P.tm_bands(cell, P.KGRID[::5], 12, plane_waves=9, return_group_velocity=True)
    assert np.linalg.norm(v, axis=-1).max() <= 1 / np.sqrt(cell.min()) + 1e-12


def test_dft_coefficients_are_pixel_centre_samples(cell: np.ndarray) -> None:
    """Summing the DFT coefficients back onto the pixel centres must give the image."""
    n = cell.shape[0]
    g = np.stack(np.meshgrid(np.arange(-16, 16), np.arange(-16, 16), indexing="ij"), -1).reshape(-1, 2)
    c = P.epsilon_fourier(cell, g)
    x, y = P.pixel_centres(n)
    image = np.einsum("g,gij->ij", c, np.exp(2j * np.pi * (g[:, 0, None, None] * x + g[:, 1, None, None] * y)))
    np.testing.assert_allclose(image, cell, atol=1e-12)


def test_reduced_model_matches_direct_solve(cell: np.ndarray) -> None:
    """The labels' reduced basis reproduces the full 15×15 basis far below its ~1e-4 truncation error."""
    k = P.KGRID[::7]
    direct, v_direct = P.tm_bands(cell, k, 6, plane_waves=15, return_group_velocity=True)
    reduced = P.reduced_tm_bands(cell, k, 6, plane_waves=15)
    nonzero = direct > 0
    assert np.max(np.abs(reduced - direct)[nonzero] / direct[nonzero]) < 1e-5
    f, v = P.tm_modes_below(cell, k, direct[:, 2].max() * (1 + 1e-4), plane_waves=15)
    np.testing.assert_allclose(f[:, :3], direct[:, :3], rtol=1e-5)
    np.testing.assert_allclose(v[:, :3], v_direct[:, :3], atol=1e-5)


def test_plane_waves_validation(cell: np.ndarray) -> None:
    with pytest.raises(ValueError):
        P.tm_bands(cell, np.zeros((1, 2)), plane_waves=10)
    with pytest.raises(ValueError):
        P.tm_bands(cell[:8, :8], np.zeros((1, 2)), plane_waves=9)


def test_bands_label_matches_full_grid_solve(cell: np.ndarray) -> None:
    labels = P.bands_label(cell, plane_waves=7)
    assert labels.shape == (6, 625)
    direct = P.tm_bands(cell, P.KGRID[::11], 6, plane_waves=7)
    np.testing.assert_allclose(labels[:, ::11].T, direct, atol=1e-12)


# ---------------------------------------------------------------- DOS


def test_empty_lattice_dos_is_two_pi_f() -> None:
    for eps in (1.0, 6.5):
        f, dos = P.dos_label(np.full((32, 32), eps))
        exact = 2 * np.pi * f[P.METRIC_MASK]
        assert np.abs(dos[P.METRIC_MASK] - exact).sum() / exact.sum() < 0.01


@pytest.mark.parametrize("k_points, count", [(5, 13), (9, 41), (13, 85)])
def test_a_coarse_k_grid_tiles_the_zone(k_points: int, count: int) -> None:
    points, weights, inverse = P.reduced_kgrid("time_reversal", k_points)
    assert len(points) == count and weights.sum() == k_points**2
    grid = np.arange(-(k_points // 2), k_points // 2 + 1) / k_points
    assert np.allclose(np.unique(points[:, 0]), grid[grid >= 0]) and np.bincount(inverse).tolist() == weights.tolist()
    with pytest.raises(ValueError, match="odd"):
        P.reduced_kgrid("time_reversal", 24)  # an even grid has no point at Γ


def test_a_coarse_k_grids_empty_lattice_dos_converges_to_two_pi_f() -> None:
    """The cheap DOS (coarse k-grid, few plane waves) of a uniform cell against the closed form
    2πf̃: the same Gilat–Raubenheimer extrapolation on larger squares, error falling with N."""
    errors = []
    for k_points in (5, 9, 13, 25):
        f, dos = P.dos_label(np.full((32, 32), 4.0), plane_waves=7, k_points=k_points)
        exact = 2 * np.pi * f[P.METRIC_MASK]
        errors.append(np.abs(dos[P.METRIC_MASK] - exact).sum() / exact.sum())
    assert errors == sorted(errors, reverse=True) and errors[0] < 0.03 and errors[-1] < 0.002, errors


def _transforms(cell: np.ndarray) -> list[np.ndarray]:
    ops = [cell, np.rot90(cell, 1), np.rot90(cell, 2), np.rot90(cell, 3), cell.T]
    ops += [np.flip(cell, 0), np.flip(cell, 1), np.rot90(cell, 1).T]
    return ops + [np.roll(cell, (5, -11), axis=(0, 1))]


def test_dos_invariant_under_translations_and_c4v(cell: np.ndarray, cell_label: np.ndarray) -> None:
    for transformed in _transforms(cell)[1:]:
        np.testing.assert_allclose(P.dos_label(transformed, plane_waves=7)[1], cell_label, atol=DOS_ATOL)


def test_reduced_model_label_is_invariant(cell: np.ndarray) -> None:
    """The sample k-points are C4v- and inversion-symmetric, so the reduced basis keeps the invariances."""
    label = P.dos_label(cell, **P.TARGET_LABEL_OPTS)[1]
    for transformed in (np.rot90(cell), np.flip(cell, 1), np.roll(cell, 9, axis=1)):
        np.testing.assert_allclose(P.dos_label(transformed, **P.TARGET_LABEL_OPTS)[1], label, atol=DOS_ATOL)


def test_dos_invariant_under_eps_scaling(cell: np.ndarray, cell_label: np.ndarray) -> None:
    low, high = 1 / cell.min(), 20 / cell.max()  # scales that keep ε within [1, 20]
    assert high - low > 0.2
    scale = low + 0.3 * (high - low)
    np.testing.assert_allclose(P.dos_label(scale * cell, plane_waves=7)[1], cell_label, atol=1e-3)


def test_dos_is_not_trivially_invariant(cell: np.ndarray, cell_label: np.ndarray) -> None:
    """The invariance tests would pass for a constant label: a different cell must differ."""
    other = P.dos_label(P.sample_level_set_cell(np.random.default_rng(8)), plane_waves=7)[1]
    assert np.abs(other - cell_label)[P.METRIC_MASK].max() > 0.1


def test_c4v_wedge_equals_time_reversal_for_rods() -> None:
    rod = P.rod_cell(0.31, 14.0, 2.5)
    np.testing.assert_allclose(
        P.dos_label(rod, plane_waves=7, symmetry="c4v")[1],
        P.dos_label(rod, plane_waves=7, symmetry="time_reversal")[1],
        atol=DOS_ATOL,
    )


def test_c4v_rejects_asymmetric_cells(cell: np.ndarray) -> None:
    with pytest.raises(ValueError):
        P.dos_label(cell, plane_waves=7, symmetry="c4v")
    P.dos_label(np.roll(P.rod_cell(0.3, 5.0, 1.0), (3, 7), axis=(0, 1)), plane_waves=7, symmetry="c4v")


def test_mode_counting(cell: np.ndarray) -> None:
    """∫ DOS df̃ over the grid = (states with f̃ in the grid's range) / 625, up to boundary states.

    Unsmoothed, each state's trapezoid carries exactly its weight; the integral counts it by
    the fraction of its trapezoid inside the range, the point count by 0 or 1.  They differ
    only for states whose trapezoid straddles an end of the range, so the total weight of
    those / 625 is a strict bound on the difference (observed: ~0.3% of the count, bound ~8%).
    The lower end (-0.0012) is straddled by no state: band 1 rises as |k| from Γ.
    """
    f, dos = P.dos_label(cell, plane_waves=7, smoothing=0.0)
    lo, hi = -0.0012, f[-1] + 0.0012
    integral = dos.sum() * 0.0024

    points, weights, _ = P.reduced_kgrid()
    scale = np.sqrt(cell.mean())
    modes, v = P.tm_modes_below(cell, points, 1.5 / scale, plane_waves=7)
    ft, spread = modes * scale, np.abs(v * scale).sum(axis=-1) * 0.02
    w = np.broadcast_to(weights[:, None], ft.shape)
    count = w[(ft >= lo) & (ft <= hi)].sum() / 625
    straddling = w[(np.abs(ft - lo) < spread) | (np.abs(ft - hi) < spread)].sum() / 625
    assert count > 2 and straddling < 0.1 * count
    assert abs(integral - count) <= straddling


def test_smoothing_preserves_mode_count(cell: np.ndarray, cell_label: np.ndarray) -> None:
    raw = P.dos_label(cell, plane_waves=7, smoothing=0.0)[1]
    # the Gaussian (σ = 2 bins) moves weight only across the ends of the range
    assert abs(raw[100:].sum() - cell_label[100:].sum()) * 0.0024 < 1e-3
    assert np.abs(np.diff(cell_label, 2)[100:]).max() < np.abs(np.diff(raw, 2)[100:]).max()


def test_dos_includes_every_band_that_reaches_the_grid(cell: np.ndarray, cell_label: np.ndarray) -> None:
    """The label equals Gilat–Raubenheimer over *all* 49 eigenpairs; a fixed 3 bands would not."""
    points, weights, _ = P.reduced_kgrid()
    f, v = P.tm_bands(cell, points, 49, plane_waves=7, return_group_velocity=True)
    scale = np.sqrt(cell.mean())
    kernel_pad = 8
    centres = np.arange(-kernel_pad, 400 + kernel_pad) * 0.0024
    edges = np.append(centres - 0.0012, centres[-1] + 0.0012)

    def label(n_bands: int) -> np.ndarray:
        w = np.repeat(weights, n_bands) / 625
        raw = P.ggr_dos(scale * f[:, :n_bands].ravel(), scale * v[:, :n_bands].reshape(-1, 2), w, edges, 0.02)
        kernel = np.exp(-0.5 * (np.arange(-kernel_pad, kernel_pad + 1) / 2.0) ** 2)
        return np.convolve(raw, kernel / kernel.sum(), mode="valid")

    np.testing.assert_allclose(cell_label, label(49), atol=1e-10)
    assert np.abs(label(3) - cell_label).max() > 0.1


def test_dos_labels_batches(cell: np.ndarray, cell_label: np.ndarray) -> None:
    batch = P.dos_labels(np.stack([cell, cell.T]), plane_waves=7)
    assert batch.shape == (2, 400)
    np.testing.assert_allclose(batch, np.stack([cell_label, cell_label]), atol=DOS_ATOL)


def test_label_options_are_valid() -> None:
    rng = np.random.default_rng(3)
    target = P.dos_label(P.sample_level_set_cell(rng), **P.TARGET_LABEL_OPTS)[1]
    surrogate = P.dos_label(P.sample_rod_cell(rng), **P.SURROGATE_LABEL_OPTS)[1]
    for dos in (target, surrogate):
        assert dos.shape == (400,) and np.all(np.isfinite(dos)) and np.all(dos >= -1e-12)
    assert P.SURROGATE_LABEL_OPTS["symmetry"] == "c4v"


# ---------------------------------------------------------------- generators


def test_level_set_cell_fill_fraction() -> None:
    rng = np.random.default_rng(4)
    coeffs = rng.uniform(0, 1, 9) * np.exp(2j * np.pi * rng.uniform(0, 1, 9))
    for fill in (0.01, 0.3, 0.77, 0.99):
        cell = P.level_set_cell(coeffs, fill, 15.0, 2.0)
        assert abs((cell == 15.0).mean() - fill) <= 1 / cell.size


def test_sample_level_set_cell() -> None:
    rng = np.random.default_rng(5)
    cells = np.array([P.sample_level_set_cell(rng) for _ in range(200)])
    assert cells.shape == (200, 32, 32) and cells.dtype == np.float64
    assert cells.min() >= 1 and cells.max() <= 20
    assert all(len(np.unique(c)) == 2 for c in cells)
    # ε_in and ε_out are independent U(1, 20): the larger value is "in" half the time, so the
    # fraction of max-valued pixels is ~U(0.01, 0.99) (mean 0.5, sd 0.28)
    fractions = (cells == cells.max(axis=(1, 2), keepdims=True)).mean(axis=(1, 2))
    assert 0.01 - 1 / 1024 <= fractions.min() and fractions.max() <= 0.99 + 1 / 1024
    assert abs(fractions.mean() - 0.5) < 0.06 and 0.2 < fractions.std() < 0.36
    np.testing.assert_array_equal(P.sample_level_set_cell(np.random.default_rng(9)), P.sample_level_set_cell(np.random.default_rng(9)))


def test_sample_rod_cell() -> None:
    rng = np.random.default_rng(6)
    for _ in range(50):
        cell = P.sample_rod_cell(rng)
        assert cell.shape == (32, 32) and 1 <= cell.min() and cell.max() <= 20
        # C4v about the origin = pixel (16, 16): x -> -x is i -> -i mod n, x <-> y is a transpose
        np.testing.assert_array_equal(cell, cell.T)
        np.testing.assert_array_equal(cell, np.roll(np.flip(cell, 0), 1, axis=0))
        assert len(np.unique(cell)) <= 2
        assert 1 <= np.sum(cell != cell[0, 0]) or cell[0, 0] == cell[16, 16]  # the rod fits in the cell


def test_rod_cell_radius() -> None:
    for radius in (0.05, 0.2, 0.37, 0.5):
        cell = P.rod_cell(radius, 9.0, 1.0, n=256)
        area = (cell == 9.0).mean()
        assert abs(area - np.pi * radius**2) < 4 * radius / 256 + 1 / 256**2
    assert (P.rod_cell(1e-6, 9.0, 1.0) == 9.0).sum() == 1  # the centre pixel: rods never vanish
