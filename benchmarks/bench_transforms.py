"""Batched invariance transforms vs per-sample Python loops, on the same random ops.

Prints a table and writes JSON. Every path applies identical draws (shift, point-group op,
scale factor per sample) and must give identical outputs. Two loop baselines:
- ``reference-style``: what the SIB-CL reference code does — one pass over the samples per
  transform (translate, point group, scale), each growing its output batch with
  ``torch.cat`` inside the loop;
- ``idealised``: a single pass per sample, stacked once at the end (a loop done well).

Each batch is timed at torch's default thread count (what a user gets) and at one thread; with
``--device cuda`` the data sit on the GPU (the loops' draws stay Python numbers on the host, as
a per-sample loop has them), each call is timed to its end (synchronised), and threads are
not varied.

    python benchmarks/bench_transforms.py [--repeats 10] [--device cpu] [--json benchmarks/results/transforms.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from results_file import write_results
from sibcl_ray.learning.transforms import apply_geometry, point_group_ops


def _ops(dim: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(axis permutation, flipped axes) per op, numbered as ``apply_geometry`` numbers them."""
    return [(perm, tuple(axis for axis, flip in enumerate(flips) if flip)) for perm, flips in point_group_ops(dim)]


def draws(batch: int, dim: int, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"shifts": torch.randint(-n // 2, n // 2 + 1, (batch, dim), generator=gen),
            "ops": torch.randint(0, len(_ops(dim)), (batch,), generator=gen),
            "scale": torch.exp(torch.empty(batch).uniform_(-0.5, 0.5, generator=gen))}


def batched(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    y = apply_geometry(x, d["ops"], d["shifts"])
    return y.mul_(d["scale"].view((-1,) + (1,) * (x.dim() - 1)))  # y is a fresh tensor


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


def measure(shape: tuple[int, ...], repeats: int, device: torch.device, rounds: int = 3) -> dict[str, object]:
    """Seconds per batch of each path in steady state (a warm-up call, then ``repeats`` timed
    calls in a row), the paths taking turns for ``rounds`` rounds so that drift in the machine's
    speed hits all of them alike. Speed-ups compare the fastest calls (as ``timeit`` advises:
    slower calls measure interference, which on a shared VM varies several-fold within a minute);
    medians are kept in the JSON."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen).to(device)
    d = draws(shape[0], len(shape) - 1, shape[-1], gen)
    on_device = {name: value.to(device) for name, value in d.items()}  # the batched path's draws live with the data
    expected = batched(x, on_device)
    assert torch.equal(expected, per_sample_loop(x, d)), "batched and idealised loop disagree"
    assert torch.equal(expected, reference_style_loop(x, d)), "batched and reference-style loop disagree"
    paths = {"batched": (batched, on_device), "loop": (per_sample_loop, d), "reference": (reference_style_loop, d)}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, (fn, ops) in paths.items():
            fn(x, ops)
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                fn(x, ops)
                _sync(device)
                samples[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in samples.items()}
    median = {name: statistics.median(values) for name, values in samples.items()}
    return {"batch_shape": list(shape), "device": str(device), "torch_threads": torch.get_num_threads(),
            "timed_calls": rounds * repeats,
            "batched_s": best["batched"], "reference_loop_s": best["reference"], "idealised_loop_s": best["loop"],
            "median_s": median, "batched_samples_per_s": shape[0] / best["batched"],
            "reference_loop_samples_per_s": shape[0] / best["reference"],
            "speedup_vs_reference_loop": best["reference"] / best["batched"],
            "speedup_vs_idealised_loop": best["loop"] / best["batched"],
            "median_speedup_vs_reference_loop": median["reference"] / median["batched"]}


#: The issue's 2D batch (channel axis squeezed), the reference's 3D contrastive batch (128 target
#: + 64 surrogate inputs of 32³) and a 3D batch as large as the 2D one.
SHAPES = ((256, 32, 32), (192, 32, 32, 32), (256, 32, 32, 32))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls in a row per path, batch and round (fastest and median reported)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the data sit (default cpu)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/transforms.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    default_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({default_threads, 1} if device.type == "cpu" else {default_threads}, reverse=True):
        torch.set_num_threads(threads)
        for shape in SHAPES:
            rows.append(measure(shape, args.repeats if len(shape) == 3 else max(2, args.repeats // 5), device))
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    print("| batch (B, …) | torch threads | batched ms | reference-style loop ms | speed-up | idealised loop ms | speed-up "
          "| speed-up vs reference-style, medians |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'×'.join(map(str, r['batch_shape']))} | {r['torch_threads']} | {1e3 * r['batched_s']:.2f} | "
              f"{1e3 * r['reference_loop_s']:.1f} | {r['speedup_vs_reference_loop']:.0f}× | "
              f"{1e3 * r['idealised_loop_s']:.1f} | {r['speedup_vs_idealised_loop']:.1f}× | "
              f"{r['median_speedup_vs_reference_loop']:.0f}× |")
    write_results(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
