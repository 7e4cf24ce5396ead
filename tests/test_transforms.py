"""Batched invariance transforms: group structure, exact rolls, and real-solver invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sibcl_ray.learning.transforms as transforms
from sibcl_ray.learning.transforms import (
    apply_geometry,
    apply_point_group,
    apply_translation,
    make_augmenter,
    point_group_ops,
    random_scale,
)


def point_group_maps(n: int, dim: int) -> torch.Tensor:
    """Every op of ``point_group_ops`` as one flat permutation of an n^dim grid, shape (ops, n^dim)."""
    grid = torch.arange(n**dim).reshape((n,) * dim)
    maps = []
    for perm, flips in point_group_ops(dim):
        axes = [axis for axis, flip in enumerate(flips) if flip]
        op = grid.permute(perm)
        maps.append((op.flip(axes) if axes else op).reshape(-1))
    return torch.stack(maps)


@pytest.mark.parametrize("n, dim, order", [(6, 2, 8), (4, 3, 48)])
def test_point_group_is_a_group_of_bijections(n: int, dim: int, order: int) -> None:
    maps = point_group_maps(n, dim)
    assert maps.shape == (order, n**dim)
    assert torch.equal(maps[0], torch.arange(n**dim))  # identity first
    keys = {tuple(m.tolist()) for m in maps}
    assert len(keys) == order  # all distinct
    for m in maps:
        assert torch.equal(torch.sort(m).values, torch.arange(n**dim))  # a permutation
    for a in maps:
        has_inverse = False
        for b in maps:
            composed = tuple(a[b].tolist())
            assert composed in keys  # closure
            has_inverse |= composed == tuple(range(n**dim))
        assert has_inverse


def test_c4v_contains_rotations_and_mirrors() -> None:
    x = torch.arange(16.0).reshape(1, 4, 4)
    images = {tuple(apply_point_group(x, torch.tensor([k])).flatten().tolist()) for k in range(8)}
    expected = {tuple(torch.rot90(x, r, dims=(1, 2)).flatten().tolist()) for r in range(4)}
    expected |= {tuple(torch.rot90(x.flip(1), r, dims=(1, 2)).flatten().tolist()) for r in range(4)}
    assert images == expected


def test_batched_translation_is_exact_roll() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, 8, generator=gen)
    shifts = torch.tensor([[0, 0], [1, 0], [0, -3], [7, 2], [-4, 5]])
    out = apply_translation(x, shifts)
    for b in range(5):
        assert torch.equal(out[b], torch.roll(x[b], shifts=tuple(shifts[b].tolist()), dims=(0, 1)))
    x3 = torch.randn(2, 4, 4, 4, generator=gen)
    s3 = torch.tensor([[1, 2, 3], [-1, 0, 2]])
    out3 = apply_translation(x3, s3)
    for b in range(2):
        assert torch.equal(out3[b], torch.roll(x3[b], shifts=tuple(s3[b].tolist()), dims=(0, 1, 2)))


@pytest.mark.parametrize("shape, chunk, staged", [((40, 6, 6), 1 << 18, False), ((40, 6, 6), 100, False),
                                                  ((53, 4, 4, 4), 1 << 18, True), ((53, 4, 4, 4), 200, True),
                                                  ((53, 4, 4, 4), 200, False)])
def test_batched_geometry_equals_per_sample_roll_permute_flip(shape: tuple[int, ...], chunk: int, staged: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample gets its own shift and op in one call; chunking (CPU) and the 3D path
    (three stages on a CPU, one gather elsewhere) change nothing."""
    monkeypatch.setattr(transforms, "CPU_CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(transforms, "_staged_3d", lambda x: staged)
    gen = torch.Generator().manual_seed(6)
    dim, n = len(shape) - 1, shape[-1]
    table = point_group_ops(dim)
    x = torch.randn(shape[:1] + (n + 2,) + shape[2:], generator=gen)[:, 1:-1]  # not contiguous
    ops = torch.randint(0, len(table), (shape[0],), generator=gen)
    shifts = torch.randint(-3 * n, 3 * n, (shape[0], dim), generator=gen)
    out = apply_geometry(x, ops, shifts)
    for b in range(shape[0]):
        perm, flips = table[int(ops[b])]
        expected = torch.roll(x[b], tuple(shifts[b].tolist()), tuple(range(dim))).permute(perm)
        flipped = [axis for axis, flip in enumerate(flips) if flip]
        assert torch.equal(out[b], expected.flip(flipped) if flipped else expected)


def test_scale_keeps_range_and_ratios() -> None:
    gen = torch.Generator().manual_seed(1)
    values = torch.rand(64, 8, 8, generator=gen) * 5 + 2  # physical values in [2, 7]
    encoded = (values - 1) / 19
    out = random_scale(1.0, (1.0, 20.0))(encoded, gen)
    scaled = 1 + 19 * out
    assert scaled.min() >= 1 - 1e-5 and scaled.max() <= 20 + 1e-5
    ratio = scaled / values
    assert torch.allclose(ratio, ratio[:, :1, :1].expand_as(ratio), rtol=1e-5)  # one factor per sample
    assert ratio.flatten(1)[:, 0].std() > 0.1  # and it varies across samples


def test_strength_zero_is_identity() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 8, 8, generator=gen)
    assert torch.allclose(make_augmenter(("translate", "point_group", "scale"), 0.0, (1.0, 20.0))(x, gen), x)


def test_photonic_label_is_invariant_under_the_augmentations() -> None:
    from sibcl_ray.physics.photonic import dos_label, sample_level_set_cell

    opts = {"plane_waves": 7}
    eps = sample_level_set_cell(np.random.default_rng(3), n=16).astype(np.float32)
    x = torch.from_numpy((eps - 1) / 19)[None]
    reference = dos_label(eps.astype(np.float64), **opts)[1]
    gen = torch.Generator().manual_seed(4)

    def label(encoded: torch.Tensor) -> np.ndarray:
        return dos_label(1 + 19 * encoded[0].double().numpy(), **opts)[1]

    for op in range(8):
        assert np.abs(label(apply_point_group(x, torch.tensor([op]))) - reference).max() < 1e-6 * np.abs(reference).max() + 1e-6
    assert np.abs(label(apply_translation(x, torch.tensor([[5, -3]]))) - reference).max() < 1e-6 * np.abs(reference).max() + 1e-6
    scaled = label(random_scale(1.0, (1.0, 20.0))(x, gen))
    assert np.abs(scaled - reference).sum() < 1e-3 * np.abs(reference).sum()


def test_schrodinger_label_is_invariant_under_the_point_group() -> None:
    from sibcl_ray.physics.schrodinger import ground_state_energy, sample_potential

    rng = np.random.default_rng(5)
    v2 = sample_potential(rng, 2)
    e2 = ground_state_energy(v2)
    x2 = torch.from_numpy(v2)[None]
    for op in range(8):
        assert abs(ground_state_energy(apply_point_group(x2, torch.tensor([op]))[0].numpy()) - e2) < 1e-9 * e2
    v3 = sample_potential(rng, 3)
    e3 = ground_state_energy(v3)
    x3 = torch.from_numpy(v3)[None]
    for op in (5, 17, 30, 47):
        assert abs(ground_state_energy(apply_point_group(x3, torch.tensor([op]))[0].numpy()) - e3) < 1e-9 * e3
    # translations are not an invariance here: a shifted potential changes E0
    assert abs(ground_state_energy(np.roll(v2, 7, axis=0)) - e2) > 1e-6 * e2
