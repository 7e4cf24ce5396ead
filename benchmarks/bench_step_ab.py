"""Old code against new code: one contrastive step's speed, measured in turns in one session.

The machine these figures come from is shared, and its speed drifts by tens of percent within
minutes; separate runs of ``bench_training.py`` cannot resolve a change. Here each side is a
long-lived process importing ``sibcl_ray`` from its own source tree (``--baseline``: e.g. an
export of ``main``, ``git archive main | tar -x -C /tmp/old``; the new side: this checkout),
built as ``bench_training.py`` builds a step (same seeds, batch, threads, random inputs). After
the warm-up steps the driver lets the sides run ``--steps`` steps each in turns, old, new, old,
new, …, so both see the same load, and reports the ratio of each round's times (old ÷ new: the
speed-up) and their median, plus each side's first loss (the same maths gives the same loss).

    git archive main | tar -x -C /tmp/old
    python benchmarks/bench_step_ab.py --baseline /tmp/old                  # tise 3D small, 5 rounds
    python benchmarks/bench_step_ab.py --baseline /tmp/old --cell phc:small --rounds 3
    python benchmarks/bench_step_ab.py --baseline /tmp/old --mode eval    # validation passes instead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from step_setup import MODELS, build_step

REPO = Path(__file__).resolve().parent.parent


def child(config: dict[str, Any]) -> None:
    """One side: build the step, run the warm-up, then answer each ``go`` line on stdin with the
    seconds its steps took (losses read after the timer, as they sync nothing on a CPU)."""
    import torch

    from sibcl_ray.learning.steps import contrastive_step

    torch.set_num_threads(config["threads"])
    step = build_step(f"{config['model']}:{config['size']}", config["batch"], config["channels_last"])
    problem, net, opt, x, augment, gen, hp, settings = (step.problem, step.net, step.opt, step.x, step.augment,
                                                       step.gen, step.hp, step.settings)
    if config["mode"] == "eval":  # a validation pass: 500 inputs in chunks of 512, as train.loop._val_error
        x = torch.rand((500, *problem.input_shape), generator=gen)
        net.eval()

        def run(steps: int) -> list[float]:
            with torch.no_grad():
                return [float(net(x, head="predict").sum()) for _ in range(steps)]
    else:
        def run(steps: int) -> list[float]:
            out = [contrastive_step(net, opt, x, augment, gen, hp["temperature"], settings) for _ in range(steps)]
            return [v.item() for v in out]
    losses = run(config["warmup"])
    print(json.dumps({"ready": True, "inputs": len(x), "settings": settings.describe(), "losses": losses,
                      "sibcl_ray": str(Path(sys.modules["sibcl_ray"].__file__).parent)}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        start = time.perf_counter()
        out = run(steps)
        elapsed = time.perf_counter() - start
        print(json.dumps({"seconds": elapsed, "losses": out}), flush=True)


def start_side(tree: Path, config: dict[str, Any],
               env_vars: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A side's process, importing ``sibcl_ray`` from ``tree``, once it has warmed up."""
    env = {**os.environ, "PYTHONPATH": str(tree), **env_vars}
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(config)], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, ready


def turn(proc: subprocess.Popen[str], steps: int) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{steps}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="source tree of the old code (a folder holding sibcl_ray/)")
    parser.add_argument("--cell", default="tise3d:small",
                        choices=[f"{m}:{s}" for m in MODELS for s in ("small", "reference")],
                        help="model:size, as bench_training.py (default tise3d:small)")
    parser.add_argument("--batch", type=int, default=96,
                        help="contrastive batch in inputs, a third surrogate (default 96)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per side (default 1, as a search's trials)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="steps per side per round (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of old, new (default 5)")
    parser.add_argument("--ablate", action="store_true",
                        help="add a third side: the new code with NCDHW/NCHW convolutions (channels-last off)")
    parser.add_argument("--mode", choices=("step", "eval"), default="step",
                        help="time contrastive steps, or validation passes (500 inputs, eval mode, no grad)")
    parser.add_argument("--thp", action="store_true",
                        help="add a side: the new code with torch's transparent-huge-page allocations on")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/step_ab.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.baseline is None or not (args.baseline / "sibcl_ray").is_dir():
        print(f"error: --baseline {args.baseline} is not a source tree holding sibcl_ray/ "
              "(make one: git archive main | tar -x -C /tmp/old)", file=sys.stderr)
        sys.exit(2)
    model, size = args.cell.split(":")
    base = {"model": model, "size": size, "batch": args.batch, "threads": args.threads, "warmup": args.warmup,
            "channels_last": None, "mode": args.mode}
    sides = {"old": (args.baseline, base, {}), "new": (REPO, base, {})}
    if args.ablate:
        sides["new, channels-last off"] = (REPO, {**base, "channels_last": False}, {})
    if args.thp:
        sides["new, THP_MEM_ALLOC_ENABLE=1"] = (REPO, base, {"THP_MEM_ALLOC_ENABLE": "1"})
    procs, info = {}, {}
    for name, (tree, config, env_vars) in sides.items():
        procs[name], info[name] = start_side(tree, config, env_vars)
        print(f"{name}: {info[name]['sibcl_ray']} ({info[name]['settings']}), warm-up losses "
              f"{', '.join(f'{v:.6f}' for v in info[name]['losses'])}", flush=True)
    load_before = os.getloadavg()
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        rounds.append({name: turn(proc, args.steps) for name, proc in procs.items()})
        times = ", ".join(f"{n} {t['seconds'] / args.steps:.3f} s/step" for n, t in rounds[-1].items())
        print(f"round {r + 1}: {times}", flush=True)
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    inputs = info["old"]["inputs"]
    summary = {}
    for name in sides:
        per_step = [r[name]["seconds"] / args.steps for r in rounds]
        ratios = [r["old"]["seconds"] / r[name]["seconds"] for r in rounds]
        summary[name] = {"median_s_per_step": statistics.median(per_step),
                         "median_inputs_per_s": inputs / statistics.median(per_step),
                         "speedup_per_round": ratios, "speedup_median": statistics.median(ratios)}
        print(f"{name}: {summary[name]['median_inputs_per_s']:.1f} inputs/s (median), old ÷ this per round "
              f"{', '.join(f'{v:.2f}' for v in ratios)}: median **{summary[name]['speedup_median']:.2f}×**")
    print(f"load average {load_before[0]:.1f} before the rounds, {os.getloadavg()[0]:.1f} after")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results_file import write_results

    write_results(args.json, {"settings": {k: str(v) for k, v in vars(args).items() if k not in ("json", "child")},
                              "sides": info, "rounds": rounds, "summary": summary,
                              "load_average": [load_before, os.getloadavg()]})


if __name__ == "__main__":
    main()
