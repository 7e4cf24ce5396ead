"""How long a trial takes to report its first epoch, against its epochs and against Ray's floor.

Reads a finished search's Tune experiment: for each trial, the seconds from its start to its
first report (Tune's ``time_this_iter_s`` of the first result: the trial actor (or a reused
one), for DDP trials also Train's controller, worker actors and process group, the data, then
the first epoch itself) and the median seconds of its later pretraining epochs. With ``--floor`` it also measures Ray's floor on this
machine in the same pattern and concurrency, for both kinds of trial: Tune function trainables
that report once (what a one-worker trial now pays), and ones that each fit a ``TorchTrainer``
(1 worker) whose loop reports once (what a DDP trial pays). Prints a table, writes JSON.

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


def _floor_function(config: dict) -> None:
    from ray import tune

    tune.report({"epochs_done": 1})


def ray_floor(trials: int, concurrent: int) -> dict[str, list[float]]:
    """Seconds from trial start to first report: a function trainable that only reports (with
    actors reused, as one-worker trials run), and one fitting a TorchTrainer that only reports."""
    import ray
    from ray import tune

    ray.init(num_cpus=2, resources={"trial_driver": concurrent}, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}})
    floors = {}
    try:
        with tempfile.TemporaryDirectory() as storage:
            kinds = {"function trainable": (tune.with_resources(_floor_function, {"cpu": 1}), True),
                     "TorchTrainer in a trial": (tune.with_resources(tune.with_parameters(_floor_trial, storage=storage),
                                                                     {"cpu": 0, "trial_driver": 1}), False)}
            for kind, (trainable, reuse) in kinds.items():
                start = time.perf_counter()
                grid = tune.Tuner(trainable, param_space={"i": tune.grid_search(list(range(trials)))},
                                  tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=reuse),
                                  run_config=tune.RunConfig(storage_path=storage, name=kind.split()[0],
                                                            verbose=0)).fit()
                print(f"floor, {kind}: {trials} trials in {time.perf_counter() - start:.0f} s")
                floors[kind] = [r.metrics["time_this_iter_s"] for r in grid]
        return floors
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
        floors = ray_floor(trials=4, concurrent=2)
        payload["floor_first_report_s"] = floors
        for kind, floor in floors.items():
            print(f"Ray's floor ({kind} that only reports, 2 at a time): first report after "
                  f"{', '.join(f'{f:.1f}' for f in floor)} s (median {statistics.median(floor):.1f} s)")
    write_results(args.json, payload)


if __name__ == "__main__":
    main()
