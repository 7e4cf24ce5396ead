"""Checks of the `tise` physics: label solver, surrogates and input generators."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from scipy.stats import spearmanr

from sibcl_ray.physics.schrodinger import (
    LOWRES_N,
    box_energy,
    ground_state_energies,
    ground_state_energy,
    hamiltonian,
    lowres_energies,
    lowres_energy,
    sample_oscillator,
    sample_potential,
    two_level_cell,
)


def _grid(dim: int, n: int, length: float) -> list[np.ndarray]:
    x = np.linspace(-length / 2, length / 2, n)
    return np.meshgrid(*([x] * dim), indexing="ij")


def _point_group(dim: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """All (axis permutation, flipped axes) pairs: 8 in 2D, 48 in 3D."""
    flips = [tuple(a for a in range(dim) if mask[a]) for mask in itertools.product([0, 1], repeat=dim)]
    return [(perm, flip) for perm in itertools.permutations(range(dim)) for flip in flips]


# ---------------------------------------------------------------- label solver


def test_box_formula_matches_dense_discrete_laplacian() -> None:
    """The closed form is the discretisation's own eigenvalue, not the continuum one."""
    for dim, n in ((2, 20), (3, 10)):
        dense = np.linalg.eigvalsh(hamiltonian(np.zeros((n,) * dim), 7.0).toarray())[0]
        assert dense == pytest.approx(box_energy(dim, n, 7.0), rel=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("length", [10.0, 4.0])
def test_particle_in_a_box(dim: int, length: float) -> None:
    n = 32
    h = length / (n - 1)
    exact = dim * (1 - np.cos(np.pi / (n - 1))) / h**2
    assert ground_state_energy(np.zeros((n,) * dim), length) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize(("dim", "n"), [(2, 96), (3, 48)])
def test_unclipped_centred_oscillator(dim: int, n: int) -> None:
    """Walls at 4.5 widths of the softest mode shift E0 by ~1e-5; grid error is 0.1-0.4%."""
    length = 16.0
    k = np.array([0.1, 0.45, 0.25])[:dim]
    V = 0.5 * sum(ki * xi**2 for ki, xi in zip(k, _grid(dim, n, length)))
    assert ground_state_energy(V, length) == pytest.approx(0.5 * np.sqrt(k).sum(), rel=1e-2)


def test_random_2d_matches_dense() -> None:
    rng = np.random.default_rng(10)
    Vs = np.stack([sample_potential(rng, 2) for _ in range(3)])
    dense = [np.linalg.eigvalsh(hamiltonian(V).toarray())[0] for V in Vs]
    np.testing.assert_allclose(ground_state_energies(Vs), dense, rtol=1e-8, atol=0)


def test_random_3d_matches_eigsh() -> None:
    rng = np.random.default_rng(11)
    for _ in range(2):
        V = sample_potential(rng, 3)
        ref = sla.eigsh(hamiltonian(V), k=2, which="SA", tol=0)[0].min()
        assert ground_state_energy(V) == pytest.approx(ref, rel=1e-8)


def test_batch_equals_single() -> None:
    rng = np.random.default_rng(12)
    Vs = np.stack([sample_potential(rng, 2) for _ in range(40)])  # > one chunk
    single = [ground_state_energy(V) for V in Vs[::7]]
    np.testing.assert_allclose(ground_state_energies(Vs)[::7], single, rtol=1e-10)


@pytest.mark.parametrize("dim", [2, 3])
def test_point_group_invariance(dim: int) -> None:
    V = sample_potential(np.random.default_rng(13 + dim), dim)
    ops = _point_group(dim)
    assert len(ops) == (8 if dim == 2 else 48)
    transformed = np.stack([np.flip(np.transpose(V, perm), flip) for perm, flip in ops])
    assert len({t.tobytes() for t in transformed}) == len(ops)  # the ops really differ on V
    np.testing.assert_allclose(ground_state_energies(transformed), ground_state_energy(V), rtol=1e-9)


def test_label_depends_on_the_potential() -> None:
    """Guards the invariance test against a solver that ignores V."""
    rng = np.random.default_rng(14)
    V = sample_potential(rng, 2)
    shifted = np.roll(V, 5, axis=0)
    assert abs(ground_state_energy(V) - ground_state_energy(shifted)) > 1e-6
    assert ground_state_energy(V + 0.25) == pytest.approx(ground_state_energy(V) + 0.25, rel=1e-10)


# ---------------------------------------------------------------- lowres surrogate


@pytest.mark.parametrize("dim", [2, 3])
def test_lowres_empty_box_is_coarse_box(dim: int) -> None:
    assert lowres_energy(np.zeros((32,) * dim)) == pytest.approx(box_energy(dim, LOWRES_N), rel=1e-12)


def test_lowres_correlates_with_label_and_is_cheap() -> None:
    rng = np.random.default_rng(15)
    Vs = np.stack([sample_potential(rng, 2) for _ in range(50)])
    rho = spearmanr(lowres_energies(Vs), ground_state_energies(Vs)).statistic
    assert rho > 0.8
    many = np.tile(Vs, (10, 1, 1))
    cost = min(_timed(lambda: lowres_energies(many)) for _ in range(3)) / len(many)
    assert cost < 1e-3
    assert lowres_energies(Vs[:3]) == pytest.approx([lowres_energy(V) for V in Vs[:3]], rel=1e-12)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("dim", [2, 3])
def test_sample_potential_shape_range_and_seed(dim: int) -> None:
    V = sample_potential(np.random.default_rng(20), dim)
    assert V.shape == (32,) * dim
    assert V.min() >= 0.0 and V.max() <= 1.0
    assert V.max() - V.min() > 1e-3  # not constant
    np.testing.assert_array_equal(V, sample_potential(np.random.default_rng(20), dim))
    assert sample_potential(np.random.default_rng(21), dim, n=20).shape == (20,) * dim


@pytest.mark.parametrize("dim", [2, 3])
def test_two_level_before_blur(dim: int) -> None:
    rng = np.random.default_rng(22)
    for _ in range(5):
        cell = two_level_cell(rng, dim)
        assert cell.shape == (53,) * dim  # ⌊32/0.6⌋
        values = np.unique(cell)
        assert len(values) == 2 and values[0] == 0.0 and 0.0 < values[1] <= 1.0


def test_two_level_high_value_is_max_of_two_uniforms() -> None:
    """V_hi = max(U, U) has mean 2/3 (a single uniform would give 1/2)."""
    rng = np.random.default_rng(23)
    v_hi = [two_level_cell(rng, 2).max() for _ in range(400)]
    assert np.mean(v_hi) == pytest.approx(2 / 3, abs=0.03)


def test_sample_potential_is_blurred_two_level() -> None:
    rng = np.random.default_rng(24)
    V = sample_potential(rng, 2)
    assert len(np.unique(V)) > 10  # blurred, no longer two-valued
    assert np.abs(np.diff(V, axis=0)).max() < 0.5 * V.max()  # no sharp steps left


@pytest.mark.parametrize("dim", [2, 3])
def test_oscillator(dim: int) -> None:
    rng = np.random.default_rng(30)
    n, length = 32, 10.0
    h = length / (n - 1)
    for _ in range(10):
        V, energy = sample_oscillator(rng, dim, n, length)
        assert V.shape == (n,) * dim and V.min() >= 0.0 and V.max() <= 1.0
        # Curvature at the minimum recovers k_i exactly (a quadratic, unclipped there).
        centre = np.unravel_index(np.argmin(V), V.shape)
        assert all(0 < c < n - 1 for c in centre)
        k = []
        for axis in range(dim):
            line = V[tuple(slice(None) if a == axis else centre[a] for a in range(dim))]
            i = centre[axis]
            k.append((line[i + 1] - 2 * line[i] + line[i - 1]) / h**2)
        assert all(0.01 - 1e-9 <= ki <= 0.5 + 1e-9 for ki in k)
        assert energy == pytest.approx(0.5 * np.sqrt(k).sum(), rel=1e-9)
