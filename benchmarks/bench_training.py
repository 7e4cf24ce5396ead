"""Samples/s and MFU of the SIB-CL pretraining step per model, and what the Ray Train loop adds to it.

Part 1, any machine with torch (no Ray): the bare contrastive step of ``learning.steps`` for
each model (phc, tise 2D, tise 3D; small and reference sizes) on each device: data resident on
the device, a batch a third surrogate inputs as at the reference settings, two invariance views
made on the device, NT-Xent, Adam; float32 on a CPU (channels-last for 3D), bf16 autocast +
channels-last on a GPU (``StepSettings.for_device``), optionally ``torch.compile``. Reported: inputs per second (each
trained on two views, as the Train loop's ``pretrain_samples_per_s`` counts them), the model's
TFLOP/s (``learning.flops``: a multiply-add is 2 FLOPs) and MFU against a large matmul timed on
the same device in the step's dtype, and against the data sheet's bf16 peak where the GPU is
known. Inputs are random: what a step costs does not depend on the values.

Part 2, CPU with Ray (``--no-ray`` skips it): the steady-state overhead of the real training
loop. One one-worker Tune trial as a search runs it (``search.driver.run_trial``: the loop runs
inside the trial, reporting through Tune; ``--workers`` > 1 would go through Ray Train) pretrains for ``--ray-epochs`` epochs on the quick preset's split sizes; against it, the very
same epoch function (``train.loop.pretrain_epoch``: contrastive steps, surrogate steps,
validation error and probe) plus the same checkpoint write, called in this process on the same
data, with the same batch and torch threads, in turns: bare, Ray, bare, Ray, …, bare
(``--ray-repeats`` Ray runs), each Ray run divided by the mean of the bare runs around it (a
drift of the machine's speed cancels), the median of those ratios reported beside the bare ÷
bare ratios, which are the noise floor. Ratios Ray ÷ bare of: the contrastive step throughput (the loop's ``pretrain_samples_per_s``, measured around its
step loop, both sides), the whole-epoch wall time (Ray: Tune's ``time_total_s`` between reports,
so report and checkpoint upload included), and the part of it outside the contrastive steps
(where reports and checkpoints fall; on a shared machine it is also steadier than the step
throughput). Epoch 1 is left out (Ray's includes worker start-up and data loading). Labels are
random numbers: they change no step's cost. Train's controller collects reports on a poll (2 s
by default); the worker does not wait on it (it queues one report, and epochs are longer), but
Tune's timestamps step with it, so this benchmark polls every ``RAY_POLL_S`` (at 2 s and at
0.25 s the worker's throughput was the same, within this machine's noise).

    python benchmarks/bench_training.py                  # quick CPU default: ~5 min on 2 cores
    python benchmarks/bench_training.py --no-ray --cells tise3d:reference --batch 6 --steps 1
    python benchmarks/bench_training.py --no-ray --devices cuda --cells phc:reference --batch 768 --compile both
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from results_file import write_results
from sibcl_ray.learning.flops import PeakFlops, device_peak_flops, mfu, model_flops
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.steps import StepSettings, contrastive_split, contrastive_step, step_batches
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.problems import Problem, get_problem
from sibcl_ray.train.hparams import with_defaults

if TYPE_CHECKING:  # imports Ray: only part 2 loads it
    from sibcl_ray.train.runs import RunSpec

#: Model name → (problem, options).
MODELS: dict[str, tuple[str, dict[str, Any]]] = {"phc": ("phc", {}), "tise2d": ("tise", {"dim": 2}),
                                                  "tise3d": ("tise", {"dim": 3})}
CELLS = tuple(f"{model}:{size}" for model in MODELS for size in ("small", "reference"))
#: A reference-size 3D step is ~440 GFLOP per input: minutes per batch on a CPU, so not by default there.
CPU_DEFAULT_CELLS = tuple(c for c in CELLS if c != "tise3d:reference")
#: Seconds between the Train controller's polls in part 2 (Ray's default: 2).
RAY_POLL_S = 0.25


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(problem: Problem, size: str, device: torch.device, settings: StepSettings, batch: int, steps: int,
               warmup: int) -> dict[str, Any]:
    """Inputs per second of ``steps`` contrastive steps after ``warmup`` ones (compilation, cuDNN
    autotuning, allocator growth), losses read once at the end so nothing syncs between steps."""
    hp = with_defaults({})
    spec = problem.network_spec(size)
    torch.manual_seed(0)
    model = SIBCLNet(spec, problem.label_dim).to(device)
    net = settings.prepare(model, spec.dim)
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr_pretrain"])
    gen = torch.Generator().manual_seed(0)
    n_target, n_surrogate = contrastive_split(batch, hp["mix_ratio"])
    target = torch.rand((2 * n_target, *problem.input_shape), generator=gen).to(device)
    surrogate = torch.rand((2 * max(1, n_surrogate), *problem.input_shape), generator=gen).to(device)
    total = warmup + steps
    target_batches = [i.to(device) for i in step_batches(len(target), n_target, total, gen)]
    surrogate_batches = [i.to(device) for i in step_batches(len(surrogate), n_surrogate, total, gen)] if n_surrogate else None
    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    losses = []
    start = time.perf_counter()
    for step in range(total):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        x = target[target_batches[step]]
        if surrogate_batches is not None:
            x = torch.cat([x, surrogate[surrogate_batches[step]]])
        losses.append(contrastive_step(net, opt, x, augment, gen, hp["temperature"], settings))
    _sync(device)
    elapsed = time.perf_counter() - start
    loss = torch.stack(losses[warmup:]).mean().item()
    if not np.isfinite(loss):
        raise SystemExit(f"non-finite contrastive loss for {problem.name} {size} on {device} ({settings.describe()})")
    return {"inputs_per_s": steps * (n_target + n_surrogate) / elapsed, "step_s": elapsed / steps, "loss": loss}


def step_rows(args: argparse.Namespace, device: torch.device) -> tuple[list[dict[str, Any]], PeakFlops]:
    """Part 1 on one device: a row per model cell and compile setting."""
    base = StepSettings.for_device(device)
    peak = device_peak_flops(device, base.autocast_dtype or torch.float32)
    print(f"{device}: matmul peak {peak.measured / 1e12:.3g} TFLOP/s ({peak.dtype})"
          + (f", data sheet {peak.spec / 1e12:.0f} TFLOP/s bf16" if peak.spec else ""), flush=True)
    cells = args.cells or (CELLS if device.type == "cuda" else CPU_DEFAULT_CELLS)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    steps = args.steps or (20 if device.type == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
    rows = []
    for cell in cells:
        model_name, size = cell.split(":")
        name, options = MODELS[model_name]
        problem = get_problem(name, **options)
        flops = model_flops(problem.network_spec(size), problem.input_shape, problem.label_dim)
        for compiled in compiles:
            settings = StepSettings.for_device(device, compile=compiled, dim=problem.network_spec(size).dim)
            timing = time_steps(problem, size, device, settings, args.batch, steps, warmup)
            tflops = flops.contrastive_input * timing["inputs_per_s"] / 1e12
            rows.append({"device": str(device), "device_name": _device_name(device), "cell": cell, "model": model_name,
                         "model_size": size, "settings": settings.describe(), "batch": args.batch, "steps": steps,
                         "warmup_steps": warmup, "torch_threads": torch.get_num_threads(), **timing,
                         "forward_gflop_per_view": flops.forward / 1e9, "train_gflop_per_view": flops.train / 1e9,
                         "model_tflops": tflops,
                         "mfu_vs_matmul": mfu(flops.contrastive_input, timing["inputs_per_s"], peak.measured),
                         "mfu_vs_sheet": mfu(flops.contrastive_input, timing["inputs_per_s"], peak.spec) if peak.spec else None})
            print(f"  {cell} {settings.describe()}: {timing['inputs_per_s']:.1f} inputs/s", flush=True)
    return rows, peak


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def synthetic_splits(problem: Problem, sizes: dict[str, int], seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Real inputs of the problem and random labels (label offset + |N(0, 0.1)|, so errors stay finite)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, count in sizes.items():
        arrays = {"x": problem.target_inputs(rng, count)}
        if split != "unlabeled":
            arrays["y"] = (problem.label_offset() + 0.1 * np.abs(rng.normal(size=(count, problem.label_dim)))).astype(np.float32)
        out[split] = arrays
    return out


def bare_epochs(problem: Problem, job: RunSpec, splits: dict[str, dict[str, np.ndarray]], epochs: int,
                threads: int) -> list[dict[str, float]]:
    """The Train worker's pretraining epochs without Ray: the same epoch function, model, seeds and
    batches, and each epoch's model and optimizer state saved to a local folder as the worker's
    checkpoint does (``train.loop._report`` without ``ray.train.report``)."""
    from sibcl_ray.train.checkpoints import STATE_FILE
    from sibcl_ray.train.loop import Losses, PretrainOptimizers, pretrain_epoch, per_rank_batches
    from sibcl_ray.train.methods import get_method

    device = torch.device("cpu")
    config = {**job.loop_config({}, "bare"), "threads": threads}
    hp = per_rank_batches(config["hparams"], 1)
    lo, hi = problem.input_range
    data = {name: {"x": torch.from_numpy((a["x"] - lo) / (hi - lo)).float(),
                   **({"y": torch.from_numpy(a["y"] - problem.label_offset()).float()} if "y" in a else {})}
            for name, a in splits.items()}
    spec = problem.network_spec(job.model_size)
    torch.manual_seed(job.seed)
    settings = StepSettings.for_device(device, dim=spec.dim)
    model = settings.prepare(SIBCLNet(spec, problem.label_dim), spec.dim)
    losses, method = Losses(problem, config), get_method(job.method)
    opt = PretrainOptimizers.for_method(model, method, hp["lr_pretrain"])
    gen = torch.Generator().manual_seed(job.seed * 7919)
    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    rows = []
    for epoch in range(epochs):
        start = time.perf_counter()
        metrics = pretrain_epoch(model, opt, data, problem, method, hp, augment, gen, losses, epoch, config, settings)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": model.state_dict(), "pre_opt": opt.state_dict(), "config": config,
                        "epochs_done": epoch + 1}, Path(tmp) / STATE_FILE)
        rows.append({"epoch_s": time.perf_counter() - start, "inputs_per_s": metrics["pretrain_samples_per_s"]})
    return rows


def ray_epochs(job: RunSpec, scratch: Path) -> list[dict[str, float]]:
    """The pretraining epochs of one Train run in a Tune trial: Tune's ``time_total_s`` at each
    report and the worker's ``pretrain_samples_per_s``."""
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(RAY_POLL_S)  # inherited by the local Ray's processes
    import ray
    from ray import tune

    from sibcl_ray.search.driver import run_trial
    from sibcl_ray.search.run import trial_resources
    from sibcl_ray.session import start_ray
    from sibcl_ray.train.runs import trial_data

    start_ray(None, driver_slots=1, num_cpus=max(os.cpu_count() or 1, int(job.cpus_per_worker)))
    try:
        trainable = tune.with_resources(tune.with_parameters(run_trial, job=job, datasets=trial_data(job)),
                                        trial_resources(job))
        grid = tune.Tuner(trainable, param_space={},
                          run_config=tune.RunConfig(storage_path=str(scratch / "tune"), name="bench_training", verbose=0)).fit()
        result = grid[0]
        if result.error is not None:
            raise SystemExit(f"the Ray Train run failed: {result.error}")
        frame = result.metrics_dataframe
        frame = frame[frame["phase"] == "pretrain"].sort_values("epochs_done")
        return [{"time_total_s": float(t), "inputs_per_s": float(s)}
                for t, s in zip(frame["time_total_s"], frame["pretrain_samples_per_s"])]
    finally:
        ray.shutdown()


def ray_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: the Train loop in Ray against the same epochs in this process (see the module docstring)."""
    from sibcl_ray.data.shards import write_shard
    from sibcl_ray.presets import get_preset
    from sibcl_ray.train.runs import RunSpec

    model_name, size = args.ray_cell.split(":")
    name, options = MODELS[model_name]
    problem = get_problem(name, **options)
    preset = get_preset("quick", name)
    sizes = {"unlabeled": preset.n_unlabeled, "surrogate": preset.n_surrogate, "train": preset.nsam, "val": preset.n_val}
    splits = synthetic_splits(problem, sizes, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch_dir:
        scratch = Path(scratch_dir)
        paths = {}
        for split, arrays in splits.items():
            (scratch / split).mkdir()
            path = scratch / split / "shard-00000.parquet"
            write_shard(path, 0, arrays["x"], arrays.get("y"))
            paths[split] = ([str(path)], len(arrays["x"]))
        job = RunSpec(problem=name, problem_options=options, method="sibcl", model_size=size,
                      pretrain_epochs=args.ray_epochs, finetune_epochs=1, nsam=preset.nsam, seed=0, splits=paths,
                      storage_path=str(scratch / "train"), experiment="bench-training",
                      pretrain_steps=args.ray_steps, surrogate_steps=max(1, args.ray_steps // 3),
                      cpus_per_worker=args.threads)
        print(f"Ray overhead: {args.ray_cell}, {args.ray_epochs} pretraining epochs of {args.ray_steps} contrastive "
              f"+ {job.surrogate_steps} surrogate steps, {args.threads} torch thread(s)", flush=True)
        load_before = os.getloadavg()
        # bare, Ray, bare, Ray, …, bare: each Ray run is compared with the bare runs just before and
        # after it, so a drift of the machine's speed cancels, and bare ÷ bare is the noise floor
        bare_runs = [bare_epochs(problem, job, splits, args.ray_epochs, args.threads)]
        ray_runs = []
        for _ in range(args.ray_repeats):
            ray_runs.append(ray_epochs(job, scratch))
            bare_runs.append(bare_epochs(problem, job, splits, args.ray_epochs, args.threads))
    steady = slice(1, None)  # epoch 1 warms up (and in Ray also starts the worker and loads the data)
    hp = with_defaults({})  # the run's hyperparameters: it is given none
    step_inputs = args.ray_steps * sum(contrastive_split(hp["batch_size"], hp["mix_ratio"]))  # inputs an epoch's steps see

    def ray_rows(reports: list[dict[str, float]]) -> list[dict[str, float]]:
        times = [r["time_total_s"] for r in reports]
        return [{"epoch_s": t1 - t0, "inputs_per_s": r["inputs_per_s"]} for t0, t1, r in zip(times, times[1:], reports[1:])]

    bare_sides = [summary(run[steady], step_inputs) for run in bare_runs]
    ray_sides = [summary(ray_rows(run), step_inputs) for run in ray_runs]
    keys = list(bare_sides[0])
    pair_ratios = [{k: ray[k] / statistics.mean((bare_sides[i][k], bare_sides[i + 1][k])) for k in keys}
                   for i, ray in enumerate(ray_sides)]
    noise = [{k: after[k] / before[k] for k in keys} for before, after in zip(bare_sides, bare_sides[1:])]
    bare = summary([e for run in bare_runs for e in run[steady]], step_inputs)
    return {"cell": args.ray_cell, "epochs": args.ray_epochs, "contrastive_steps": args.ray_steps,
            "surrogate_steps": job.surrogate_steps, "torch_threads": args.threads, "split_sizes": sizes,
            "repeats": args.ray_repeats, "controller_poll_s": RAY_POLL_S, "load_average_before": load_before,
            "load_average_after": os.getloadavg(), "bare_runs": bare_runs, "ray_runs": ray_runs,
            "ray_first_report_s": [run[0]["time_total_s"] for run in ray_runs],
            "bare_sides": bare_sides, "ray_sides": ray_sides, "bare": bare, "pair_ratios": pair_ratios,
            "bare_over_bare": noise,
            "ratios": {k: statistics.median(r[k] for r in pair_ratios) for k in keys}}


def summary(epochs: list[dict[str, float]], step_inputs: int) -> dict[str, float]:
    """Steady-state figures of some epochs: step throughput (median and best epoch), the mean
    epoch time (for Ray, the span of its reports over their count: the poll's error does not add
    up) and the mean time outside the contrastive steps (epoch time − inputs ÷ throughput), which
    the step throughput's drift on a busy machine does not blur."""
    throughput = [r["inputs_per_s"] for r in epochs]
    epoch_s = statistics.mean(r["epoch_s"] for r in epochs)
    return {"inputs_per_s": statistics.median(throughput), "best_inputs_per_s": max(throughput), "epoch_s": epoch_s,
            "outside_steps_s": epoch_s - statistics.mean(step_inputs / t for t in throughput)}


def print_tables(rows: list[dict[str, Any]], peaks: dict[str, PeakFlops], overhead: dict[str, Any] | None) -> None:
    for device, peak in peaks.items():
        print(f"\n{device}: peak for MFU = matmul {peak.measured / 1e12:.3g} TFLOP/s in {peak.dtype}"
              + (f"; data sheet {peak.spec / 1e12:.0f} TFLOP/s" if peak.spec else ""))
    print("\n| device | model | settings | batch (inputs) | inputs/s | ms/step | GFLOP/input (2 views, fwd+bwd) "
          "| model TFLOP/s | MFU vs matmul | MFU vs sheet |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        sheet = f"{100 * r['mfu_vs_sheet']:.1f} %" if r["mfu_vs_sheet"] is not None else "—"
        device = r["device"] if r["device"] != "cpu" else f"cpu ({r['torch_threads']} thr)"
        print(f"| {device} | {r['cell']} | {r['settings']} | {r['batch']} | {r['inputs_per_s']:.4g} | "
              f"{1e3 * r['step_s']:.1f} | {2 * r['train_gflop_per_view']:.3f} | {r['model_tflops']:.3f} | "
              f"{100 * r['mfu_vs_matmul']:.1f} % | {sheet} |")
    if overhead is None:
        return
    o = overhead
    print(f"\nIn-place Tune trial (a search's one-worker trial) vs the bare loop, {o['cell']}, CPU, "
          f"{o['torch_threads']} torch thread(s), epochs 2–{o['epochs']}, {o['repeats']} Ray runs each between two bare "
          f"runs (Ray's first report {min(o['ray_first_report_s']):.1f}–{max(o['ray_first_report_s']):.1f} s after the "
          f"trial started; load average {o['load_average_before'][0]:.1f} before, {o['load_average_after'][0]:.1f} after)")
    print("| per pretraining epoch | bare runs | Ray runs | Ray ÷ neighbouring bare, per run (median) "
          "| bare ÷ previous bare (noise floor) |")
    print("|---|---|---|---|---|")
    for key, label, form in (("inputs_per_s", "contrastive steps, inputs/s (median)", ".1f"),
                             ("best_inputs_per_s", "contrastive steps, inputs/s (best epoch)", ".1f"),
                             ("epoch_s", "whole epoch, s (mean)", ".2f"),
                             ("outside_steps_s", "of which outside the contrastive steps (surrogate steps, validation, "
                                                 "probe, checkpoint; Ray: + report), s", ".2f")):
        print(f"| {label} | " + ", ".join(f"{side[key]:{form}}" for side in o["bare_sides"])
              + " | " + ", ".join(f"{side[key]:{form}}" for side in o["ray_sides"])
              + " | " + ", ".join(f"{r[key]:.3f}" for r in o["pair_ratios"]) + f" (**{o['ratios'][key]:.3f}**)"
              + " | " + ", ".join(f"{r[key]:.3f}" for r in o["bare_over_bare"]) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS,
                        help="model:size cells (default: all; on a CPU all but tise3d:reference)")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"),
                        help="devices to time the steps on (default: cpu, and cuda when torch sees one)")
    parser.add_argument("--batch", type=int, default=with_defaults({})["batch_size"],
                        help="contrastive batch in inputs, a third surrogate (default: the searched default, 96)")
    parser.add_argument("--steps", type=int, help="timed steps per cell (default 3 on a CPU, 20 on a GPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 1 on a CPU, 3 on a GPU)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off",
                        help="torch.compile the model (inductor): not, only, or both ways (default off)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on the CPU, and the Train worker's CPUs in part 2 (default 1, as a search's trials)")
    parser.add_argument("--no-ray", action="store_true", help="skip part 2 (Ray is not imported at all)")
    parser.add_argument("--ray-cell", choices=CELLS, default="phc:small", help="model of part 2 (default phc:small)")
    parser.add_argument("--ray-epochs", type=int, default=5, help="pretraining epochs of part 2, each side (default 5)")
    parser.add_argument("--ray-repeats", type=int, default=3,
                        help="Ray runs in part 2, each between two bare runs (default 3)")
    parser.add_argument("--ray-steps", type=int, default=12,
                        help="contrastive steps per epoch in part 2, a third as many surrogate steps (default 12)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/training.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[dict[str, Any]] = []
    peaks: dict[str, PeakFlops] = {}
    for name in devices:
        device_rows, peaks[name] = step_rows(args, torch.device(name))
        rows += device_rows
    overhead = None if args.no_ray else ray_overhead(args)
    print_tables(rows, peaks, overhead)
    write_results(args.json, {"settings": {k: v for k, v in vars(args).items() if k != "json"},
                              "peaks": {d: vars(p) for d, p in peaks.items()}, "rows": rows, "ray_overhead": overhead})


if __name__ == "__main__":
    main()
