"""Batched invariance transforms vs per-sample Python loops, on the same random ops.

Prints a table and writes JSON. Every path applies identical draws (shift, point-group op,
scale factor per sample) and must give identical outputs. Two loop baselines:
- ``reference-style``: what the SIB-CL reference code does — one pass over the samples per
  transform (translate, point group, scale), each growing its output batch with
  ``torch.cat`` inside the loop;
- ``idealised``: a single pass per sample, stacked once at the end (a loop done well).

    python benchmarks/bench_transforms.py [--repeats 20] [--json benchmarks/results/transforms.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import torch

from sibcl_ray.learning.transforms import apply_geometry


def _ops(dim: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(axis permutation, flipped axes) per op, in the order of transforms.point_group_maps."""
    return [(perm, tuple(a for a, f in enumerate(flips) if f))
            for perm in itertools.permutations(range(dim)) for flips in itertools.product((False, True), repeat=dim)]


def draws(batch: int, dim: int, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"shifts": torch.randint(-n // 2, n // 2 + 1, (batch, dim), generator=gen),
            "ops": torch.randint(0, len(_ops(dim)), (batch,), generator=gen),
            "scale": torch.exp(torch.empty(batch).uniform_(-0.5, 0.5, generator=gen))}


def batched(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    y = apply_geometry(x, d["ops"], d["shifts"])
    return y * d["scale"].view((-1,) + (1,) * (x.dim() - 1))


def _grow(out: torch.Tensor | None, sample: torch.Tensor) -> torch.Tensor:
    return sample[None] if out is None else torch.cat((out, sample[None]))


def reference_style_loop(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    ops = _ops(x.dim() - 1)
    axes = tuple(range(x.dim() - 1))
    out = None
    for b in range(x.shape[0]):
        out = _grow(out, torch.roll(x[b], shifts=tuple(d["shifts"][b].tolist()), dims=axes))
    rolled, out = out, None
    for b in range(x.shape[0]):
        perm, flips = ops[int(d["ops"][b])]
        s = rolled[b].permute(perm)
        out = _grow(out, s.flip(flips) if flips else s)
    moved, out = out, None
    for b in range(x.shape[0]):
        out = _grow(out, moved[b] * d["scale"][b])
    return out


def per_sample_loop(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    ops = _ops(x.dim() - 1)
    out = []
    for b in range(x.shape[0]):
        s = torch.roll(x[b], shifts=tuple(d["shifts"][b].tolist()), dims=tuple(range(x.dim() - 1)))
        perm, flips = ops[int(d["ops"][b])]
        s = s.permute(perm)
        if flips:
            s = s.flip(flips)
        out.append(s * d["scale"][b])
    return torch.stack(out)


def measure(shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen)
    d = draws(shape[0], len(shape) - 1, shape[-1], gen)
    expected = batched(x, d)
    assert torch.equal(expected, per_sample_loop(x, d)), "batched and idealised loop disagree"
    assert torch.equal(expected, reference_style_loop(x, d)), "batched and reference-style loop disagree"
    times = {}
    for name, fn in (("batched", batched), ("loop", per_sample_loop), ("reference", reference_style_loop)):
        fn(x, d)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            fn(x, d)
        times[name] = (time.perf_counter() - start) / repeats
    return {"batch_shape": list(shape), "batched_s": times["batched"], "reference_loop_s": times["reference"],
            "idealised_loop_s": times["loop"], "batched_samples_per_s": shape[0] / times["batched"],
            "reference_loop_samples_per_s": shape[0] / times["reference"],
            "speedup_vs_reference_loop": times["reference"] / times["batched"],
            "speedup_vs_idealised_loop": times["loop"] / times["batched"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/transforms.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure((256, 32, 32), args.repeats), measure((256, 32, 32, 32), max(2, args.repeats // 4))]
    print("| batch (B, …) | batched ms | reference-style loop ms | speed-up | idealised loop ms | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'×'.join(map(str, r['batch_shape']))} | {1e3 * r['batched_s']:.1f} | {1e3 * r['reference_loop_s']:.1f} | "
              f"{r['speedup_vs_reference_loop']:.0f}× | {1e3 * r['idealised_loop_s']:.1f} | {r['speedup_vs_idealised_loop']:.1f}× |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "torch_threads": 1,
                                     "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
