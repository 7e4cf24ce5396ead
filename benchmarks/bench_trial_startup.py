"""How long a trial takes to report its first epoch, against its epochs and against Ray's floor.

Reads a finished search's Tune experiment: for each trial, the seconds from its start to its
first report (Tune's ``time_this_iter_s`` of the first result: trial actor, Train controller,
worker actor, process group, data iterators, then the first epoch itself) and the median
seconds of its later pretraining epochs. With ``--floor`` it also measures Ray's floor on this
machine in the same pattern and concurrency: Tune function trainables, each fitting a
``TorchTrainer`` (1 worker) whose loop reports once, at once. Prints a table, writes JSON.

    python benchmarks/bench_trial_startup.py --search-output sibcl_runs/phc-quick [--floor]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from results_file import write_results


def trial_timings(experiment: Path) -> list[dict]:
    rows = []
    for result_file in sorted(experiment.glob("*/result.json")):
        results = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if len(results) < 2 or "resumed_at" in results[0]:
            continue
        pretrain = [r["time_this_iter_s"] for r in results[1:] if r.get("phase") == "pretrain"]
        rows.append({"trial": results[0]["trial_id"], "first_report_s": results[0]["time_this_iter_s"],
                     "pretrain_epoch_s": statistics.median(pretrain) if pretrain else None})
    return rows


def _floor_loop(config: dict) -> None:
    import ray.train

    ray.train.report({"epochs_done": 1})


def _floor_trial(config: dict, storage: str) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    TorchTrainer(_floor_loop, scaling_config=ray.train.ScalingConfig(num_workers=1),
                 run_config=ray.train.RunConfig(name=f"floor-{config['i']}", storage_path=storage,
                                                callbacks=[TuneReportCallback()])).fit()


def ray_floor(trials: int, concurrent: int) -> list[float]:
    """Seconds from trial start to first report for a TorchTrainer that does nothing but report."""
    import ray
    from ray import tune

    ray.init(num_cpus=2, resources={"trial_driver": concurrent}, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}})
    try:
        with tempfile.TemporaryDirectory() as storage:
            trainable = tune.with_resources(tune.with_parameters(_floor_trial, storage=storage),
                                            {"cpu": 0, "trial_driver": 1})
            start = time.perf_counter()
            grid = tune.Tuner(trainable, param_space={"i": tune.grid_search(list(range(trials)))},
                              tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                              run_config=tune.RunConfig(storage_path=storage, name="floor", verbose=0)).fit()
            print(f"floor: {trials} trials in {time.perf_counter() - start:.0f} s")
            return [r.metrics["time_this_iter_s"] for r in grid]
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-output", type=Path, required=True)
    parser.add_argument("--floor", action="store_true", help="also measure Ray's floor (about 2 minutes)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/trial_startup.json"))
    args = parser.parse_args()
    summary = json.loads((args.search_output / "summary.json").read_text())
    rows = trial_timings(Path(summary["experiment"]))
    print(f"{summary['problem']} {summary['preset']} ({Path(summary['experiment']).name})")
    print("| trial | first report after (s) | later pretraining epochs, median (s) | first report in epochs |")
    print("|---|---:|---:|---:|")
    for r in rows:
        ratio = r["first_report_s"] / r["pretrain_epoch_s"] if r["pretrain_epoch_s"] else float("nan")
        r["first_report_epochs"] = ratio
        print(f"| {r['trial']} | {r['first_report_s']:.1f} | {r['pretrain_epoch_s'] or float('nan'):.1f} | {ratio:.2f} |")
    payload: dict = {"search": summary["experiment"], "rows": rows}
    if args.floor:
        floor = ray_floor(trials=4, concurrent=2)
        payload["floor_first_report_s"] = floor
        print(f"Ray's floor (empty TorchTrainer in a Tune trial, 2 at a time): first report after "
              f"{', '.join(f'{f:.1f}' for f in floor)} s (median {statistics.median(floor):.1f} s)")
    write_results(args.json, payload)


if __name__ == "__main__":
    main()
