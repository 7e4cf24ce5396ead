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


@lru_cache(maxsize=8)
def point_group_maps(n: int, dim: int) -> torch.Tensor:
    """Flat gather indices of every point-group op on an n^dim grid, shape (ops, n^dim).

    Row 0 is the identity. Each row is a permutation (axis permutation, then flips).
    """
    grid = torch.arange(n**dim).reshape((n,) * dim)
    maps = []
    for perm in itertools.permutations(range(dim)):
        for flips in itertools.product((False, True), repeat=dim):
            op = grid.permute(perm)
            axes = [axis for axis, flip in enumerate(flips) if flip]
            maps.append((op.flip(axes) if axes else op).reshape(-1))
    return torch.stack(maps)


def apply_point_group(x: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Apply op ``ops[b]`` of the point group to sample ``b`` of ``x`` (B, n, …, n)."""
    maps = point_group_maps(x.shape[-1], x.dim() - 1).to(x.device)
    return x.flatten(1).gather(1, maps[ops]).reshape(x.shape)


def apply_translation(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Periodic roll of sample ``b`` by ``shifts[b]`` (B, dim) pixels: ``torch.roll`` batched."""
    spatial = x.shape[1:]
    flat = torch.zeros((x.shape[0],) + spatial, dtype=torch.long, device=x.device)
    stride = 1
    for axis in reversed(range(len(spatial))):
        n = spatial[axis]
        idx = (torch.arange(n, device=x.device)[None, :] - shifts[:, axis, None]) % n  # (B, n)
        view = [x.shape[0]] + [1] * len(spatial)
        view[axis + 1] = n
        flat = flat + idx.reshape(view) * stride
        stride *= n
    return x.flatten(1).gather(1, flat.flatten(1)).reshape(x.shape)


def random_translation(strength: float) -> Transform:
    def transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        reach = int(strength * x.shape[-1] // 2)
        if reach == 0:
            return x
        shifts = torch.randint(-reach, reach + 1, (x.shape[0], x.dim() - 1), generator=gen).to(x.device)
        return apply_translation(x, shifts)

    return transform


def random_point_group(strength: float) -> Transform:
    def transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        dim = x.dim() - 1
        n_ops = math.factorial(dim) * 2**dim
        ops = torch.randint(0, n_ops, (x.shape[0],), generator=gen)
        keep = torch.rand(x.shape[0], generator=gen) >= strength
        ops[keep] = 0
        return apply_point_group(x, ops.to(x.device))

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
    factories: dict[str, Callable[[], Transform]] = {
        "translate": lambda: random_translation(strength),
        "point_group": lambda: random_point_group(strength),
        "scale": lambda: random_scale(strength, value_range),
    }
    unknown = [name for name in invariances if name not in factories]
    if unknown:
        raise ValueError(f"unknown invariance {unknown[0]!r}: allowed values are {', '.join(factories)}")
    steps = [factories[name]() for name in invariances]

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for step in steps:
            x = step(x, gen)
        return x

    return augment
