"""Where one contrastive step's time goes: torch.profiler over a step of ``learning.steps``.

The step is built as ``bench_training.py`` builds it (seeds, batch 96 of which a third
surrogate, default hyperparameters, 1 torch thread, the device's ``StepSettings``), warmed up,
then profiled over ``--steps`` steps. Reported: the CPU time per step of each group of
operators, split into the first block (the full-resolution activations, (B, C, 32, …)) and the
rest, and the top operators by self time. Run it with ``PYTHONPATH`` at another source tree to
profile other code (``git archive main | tar -x -C /tmp/old; PYTHONPATH=/tmp/old python
benchmarks/profile_step.py``): it uses only what every version of the step has.

    python benchmarks/profile_step.py                           # tise 3D small
    python benchmarks/profile_step.py --cell phc:small --steps 3
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from results_file import write_results
from step_setup import MODELS, build_step
from sibcl_ray.learning.steps import contrastive_step

#: Operator → group (self CPU time). Everything under the augmentation's record is "augmentation"
#: and everything under the optimizer's step is "optimizer" instead, whatever the operator.
GROUPS = {"aten::mkldnn_convolution": "conv forward", "aten::convolution_backward": "conv backward",
          "aten::native_batch_norm": "BatchNorm forward", "aten::native_batch_norm_backward": "BatchNorm backward",
          "aten::max_pool3d_with_indices": "max pool forward", "aten::max_pool2d_with_indices": "max pool forward",
          "aten::max_pool3d_with_indices_backward": "max pool backward",
          "aten::max_pool2d_with_indices_backward": "max pool backward",
          "aten::clamp_min": "ReLU forward", "aten::threshold_backward": "ReLU backward",
          "aten::fill_": "zero fill (gradient buffers)", "aten::zero_": "zero fill (gradient buffers)",
          "aten::copy_": "copies", "aten::clone": "copies", "aten::cat": "copies", "aten::contiguous": "copies"}
AUGMENT, OPTIMIZER = "augmentation (48 point-group ops)", "optimizer (Adam)"
#: The new code's fused BatchNorm + max pool (``learning.normpool``): its forward's record and its backward's node.
FUSED = {"sibcl::norm_then_pool": "BatchNorm + max pool, fused: forward",
         "_NormPoolBackward": "BatchNorm + max pool, fused: backward"}


def build(cell: str, batch: int) -> tuple[Any, ...]:
    step = build_step(cell, batch)
    augment = step.augment

    def recorded(inputs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        with record_function(AUGMENT):
            return augment(inputs, g)

    return (step.net, step.opt, step.x, recorded, step.gen, step.hp["temperature"], step.settings,
            step.problem.input_shape)


def group_times(prof: profile, input_shape: tuple[int, ...], views: int, steps: int) -> dict[tuple[str, str], float]:
    """Self CPU ms per step by (group, block): 'first' where one of the operator's inputs has the
    input's full resolution, or as many values as 4 channels of it (the fused op's (rows, 128)
    views of the first block), else 'rest'."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CPU:
            continue
        chain, parent = [], event.cpu_parent
        while parent is not None:
            chain.append(parent.name)
            parent = parent.cpu_parent
        fused = [FUSED[key] for name in [event.name, *chain] for key in FUSED if name.endswith(key)]
        if AUGMENT in chain or event.name == AUGMENT:
            group = AUGMENT
        elif fused:
            group = fused[0]
        elif any(name.startswith("Optimizer.step") for name in chain) or event.name.startswith("Optimizer.step"):
            group = OPTIMIZER
        else:
            group = GROUPS.get(event.name, "other")
        shapes = [shape for shape in event.input_shapes or [] if shape]
        large = 4 * views * math.prod(input_shape)
        full = any((len(shape) >= 3 and shape[-1] == input_shape[-1]) or math.prod(shape) >= large for shape in shapes)
        block = "first" if full and group not in (AUGMENT, OPTIMIZER) else "rest"
        out[(group, block)] += event.self_cpu_time_total / 1e3 / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="tise3d:small",
                        choices=[f"{m}:{s}" for m in MODELS for s in ("small", "reference")])
    parser.add_argument("--batch", type=int, default=96, help="contrastive batch in inputs (default 96)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a search's trials)")
    parser.add_argument("--steps", type=int, default=2, help="profiled steps after one warm-up step (default 2)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/profile_step.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, opt, x, augment, gen, temperature, settings, input_shape = build(args.cell, args.batch)
    contrastive_step(net, opt, x, augment, gen, temperature, settings)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            contrastive_step(net, opt, x, augment, gen, temperature, settings)
    times = group_times(prof, input_shape, 2 * len(x), args.steps)
    total = sum(times.values())
    groups = sorted({g for g, _ in times}, key=lambda g: -(times[(g, "first")] + times[(g, "rest")]))
    print(f"{args.cell}, batch {len(x)} inputs (2 views each), {settings.describe()}, {args.threads} thread(s): "
          f"{total:.0f} ms of operator time per step")
    print("| group | first block, ms/step | other blocks and heads, ms/step | share |")
    print("|---|---:|---:|---:|")
    for g in groups:
        first, rest = times[(g, "first")], times[(g, "rest")]
        print(f"| {g} | {first:.0f} | {rest:.0f} | {100 * (first + rest) / total:.0f} % |")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=45))
    write_results(args.json, {"settings": {k: str(v) for k, v in vars(args).items()}, "step": settings.describe(),
                              "ms_per_step": {f"{g} | {b}": v for (g, b), v in times.items()}, "total_ms": total})


if __name__ == "__main__":
    main()
