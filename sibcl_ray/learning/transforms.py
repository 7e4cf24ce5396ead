"""Batched invariance transforms on (B, *spatial) tensors: one gather per batch, no sample loop.

The ``strength`` a ∈ [0, 1] of an augmentation is one number with one meaning per transform:
- ``translate``: periodic shifts drawn per sample and axis uniformly from ⌊a·N/2⌋ pixels
  either way (a = 1: every periodic translation);
- ``point_group``: with probability a, a uniformly random element of the cube's point group
  (C4v, 8 ops, in 2D; Oh, 48 ops, in 3D), otherwise the identity;
- ``scale``: values multiplied by s, log s uniform over the fraction a of the range that
  keeps every value inside the problem's input range (ε-scaling for photonic crystals).
Mirror operations map index i to N−1−i: an exact mirror of a grid with boundary points
(Schrödinger), and a mirror plus a one-pixel periodic shift of a periodic cell (photonic
crystals), where translations are invariances too.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Callable

import torch

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def point_group_ops(dim: int) -> list[tuple[tuple[int, ...], tuple[bool, ...]]]:
    """Every op of the cube's point group as (axis permutation, flip per output axis); op 0 is the identity."""
    return [(perm, flips) for perm in itertools.permutations(range(dim))
            for flips in itertools.product((False, True), repeat=dim)]


@lru_cache(maxsize=8)
def point_group_maps(n: int, dim: int) -> torch.Tensor:
    """Flat gather indices of every point-group op on an n^dim grid, shape (ops, n^dim).

    Row k is op k as one permutation of the grid (``x.permute(perm).flip(flipped axes)``);
    used to check the group structure, not on the hot path.
    """
    grid = torch.arange(n**dim).reshape((n,) * dim)
    maps = []
    for perm, flips in point_group_ops(dim):
        axes = [axis for axis, flip in enumerate(flips) if flip]
        op = grid.permute(perm)
        maps.append((op.flip(axes) if axes else op).reshape(-1))
    return torch.stack(maps)


def apply_geometry(x: torch.Tensor, ops: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll sample ``b`` of ``x`` (B, n, …, n) by ``shifts[b]``, then apply point-group op ``ops[b]``.

    Batched without full-size index tensors: samples are grouped by axis permutation (at
    most d! groups), then each axis gets one gather whose (B, n) index, broadcast over the
    other axes, does that axis's flip and periodic shift together.
    """
    dim, n = x.dim() - 1, x.shape[-1]
    table = point_group_ops(dim)
    perms = sorted({perm for perm, _ in table})
    perm_of = torch.tensor([perms.index(perm) for perm, _ in table], device=x.device)[ops]
    flips = torch.tensor([flip for _, flip in table], device=x.device)[ops]  # (B, dim)
    y = x
    if len(perms) > 1 and bool((perm_of != 0).any()):
        y = x.clone()
        for k, perm in enumerate(perms[1:], start=1):
            chosen = (perm_of == k).nonzero().squeeze(1)
            if len(chosen):
                y[chosen] = x[chosen].permute(0, *(a + 1 for a in perm))
    # rolling then permuting = permuting then rolling output axis a by the shift of input axis perm[a]
    perm_table = torch.tensor(perms, device=x.device)[perm_of]  # (B, dim)
    moved_shifts = shifts.gather(1, perm_table)
    i = torch.arange(n, device=x.device)
    flipped = torch.where(flips[:, :, None], n - 1 - i, i)  # (B, dim, n): output index after the flip
    source = (flipped - moved_shifts[:, :, None]) % n  # (B, dim, n): source index along each axis
    # one advanced-indexing pass with broadcast (B, 1, …, n, …, 1) indices: nothing of data size
    index = [torch.arange(x.shape[0], device=x.device).view((-1,) + (1,) * dim)]
    for axis in range(dim):
        view = [x.shape[0]] + [1] * dim
        view[axis + 1] = n
        index.append(source[:, axis].view(view))
    return y[tuple(index)]


def apply_point_group(x: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Apply op ``ops[b]`` of the point group to sample ``b`` of ``x`` (B, n, …, n)."""
    return apply_geometry(x, ops, torch.zeros((x.shape[0], x.dim() - 1), dtype=torch.long, device=x.device))


def apply_translation(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Periodic roll of sample ``b`` by ``shifts[b]`` (B, dim) pixels: ``torch.roll`` batched."""
    return apply_geometry(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device), shifts)


def random_geometry(strength: float, translate: bool, point_group: bool) -> Transform:
    """Random periodic shifts and/or point-group ops, applied in one ``apply_geometry`` call."""

    def transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        batch, dim, n = x.shape[0], x.dim() - 1, x.shape[-1]
        reach = int(strength * n // 2) if translate else 0
        shifts = torch.randint(-reach, reach + 1, (batch, dim), generator=gen) if reach else torch.zeros((batch, dim), dtype=torch.long)
        ops = torch.zeros(batch, dtype=torch.long)
        if point_group:
            ops = torch.randint(0, math.factorial(dim) * 2**dim, (batch,), generator=gen)
            ops[torch.rand(batch, generator=gen) >= strength] = 0
        if not reach and not bool(ops.any()):
            return x
        return apply_geometry(x, ops.to(x.device), shifts.to(x.device))

    return transform


def random_scale(strength: float, value_range: tuple[float, float]) -> Transform:
    """Scale physical values v → s·v on inputs encoded as (v − lo)/(hi − lo)."""
    lo, hi = value_range

    def transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        values = lo + x * (hi - lo)
        flat = values.flatten(1)
        log_low = torch.log(lo / flat.min(dim=1).values)  # ≤ 0: smallest value reaches lo
        log_high = torch.log(hi / flat.max(dim=1).values)  # ≥ 0: largest value reaches hi
        u = torch.rand(x.shape[0], generator=gen).to(x.device)
        s = torch.exp(strength * (log_low + u * (log_high - log_low)))
        scaled = (values * s.view((-1,) + (1,) * (x.dim() - 1))).clamp(lo, hi)
        return (scaled - lo) / (hi - lo)

    return transform


def make_augmenter(invariances: tuple[str, ...], strength: float, value_range: tuple[float, float]) -> Transform:
    """Compose the random transforms a problem declares exact for its label."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"augmentation strength {strength} is outside [0, 1]")
    unknown = [name for name in invariances if name not in ("translate", "point_group", "scale")]
    if unknown:
        raise ValueError(f"unknown invariance {unknown[0]!r}: allowed values are translate, point_group, scale")
    steps: list[Transform] = []
    if "translate" in invariances or "point_group" in invariances:
        steps.append(random_geometry(strength, "translate" in invariances, "point_group" in invariances))
    if "scale" in invariances:
        steps.append(random_scale(strength, value_range))

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for step in steps:
            x = step(x, gen)
        return x

    return augment
