"""Faults a cluster has, on real Ray with real processes: killed tasks, workers and drivers,
poisoned data; and our own metrics on the node's Prometheus endpoint."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from waiting import wait_for
import ray
from ray import tune
from ray.util import state as ray_state

from sibcl_ray.data import shards
from sibcl_ray.data.generate import generate
from sibcl_ray.benchmark.run import _task_options
from sibcl_ray.search.driver import run_trial
from sibcl_ray.search.run import trial_failure_config, trial_resources
from sibcl_ray.train.runs import RunSpec, fit_run, trial_data
from sibcl_ray.train.checkpoints import load_state

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]


def _here() -> str:
    """This session's GCS address: without one the State API refuses whenever another Ray runs on
    the machine ("Found multiple active Ray instances")."""
    return ray.get_runtime_context().gcs_address
TISE_2D = {"dim": 2}


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised by the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _job(data: Any, tmp_path: Path, **overrides: Any) -> RunSpec:
    fields = dict(problem="tise", problem_options=TISE_2D, method="sl", model_size="small", pretrain_epochs=0,
                  finetune_epochs=3, nsam=40, seed=0,
                  splits={s: ([str(p) for p in ps], data.counts[s]) for s, ps in data.paths.items()},
                  storage_path=str(tmp_path / "train"), experiment="resilience", pretrain_steps=4, surrogate_steps=2)
    fields.update(overrides)
    return RunSpec(**fields)


@pytest.fixture(scope="module")
def tise_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("data")
    return generate("tise", TISE_2D, {"unlabeled": 200, "surrogate": 100, "train": 40, "val": 40}, root,
                    seed=0, shard_size=20, progress=False)


def test_killed_ddp_worker_resumes_from_checkpoint_and_finishes(tise_data: Any, tmp_path: Path) -> None:
    """Two DDP workers (Ray Train): one is killed, Train restarts the group from the last checkpoint."""
    job = _job(tise_data, tmp_path, method="sibcl", pretrain_epochs=3, finetune_epochs=8, num_workers=2)
    run_dir = tmp_path / "train" / "killed-worker"
    thread, box = _in_thread(lambda: fit_run(job, {"batch_size": 64}, "killed-worker"))
    wait_for(lambda: len(list(run_dir.glob("checkpoint_*"))) >= 4, 180, "four checkpoints")
    workers = ray_state.list_actors(address=_here(), filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert len(workers) == 2
    os.kill(workers[1]["pid"], signal.SIGKILL)
    thread.join(300)
    assert "error" not in box, box.get("error")
    result = box["value"]
    assert result.metrics["training_complete"] and result.metrics["epochs_done"] == 11
    state = load_state(result.checkpoint)
    assert len(state["resumed_at"]) == 1 and 1 <= state["resumed_at"][0] < 11  # resumed, not restarted
    assert math.isfinite(state["best_val"])


def _epochs_checkpointed(run_dir: Path) -> int:
    return max((int(p.name.split("_")[1]) for p in run_dir.glob("checkpoint_*")), default=0)


def test_killed_run_task_is_retried_and_resumes_from_its_checkpoint(tise_data: Any, tmp_path: Path) -> None:
    """A one-worker benchmark run trains inside its Ray task: Ray retries the task when its
    process dies, and the run continues from the checkpoint it wrote itself."""
    job = _job(tise_data, tmp_path, method="sibcl", pretrain_epochs=3, finetune_epochs=8)
    assert job.trains_in_place
    run_dir = tmp_path / "train" / "killed-task"
    ref = ray.remote(fit_run).options(**_task_options(job)).remote(job, {"batch_size": 64}, "killed-task", None,
                                                                   ray.put(trial_data(job)))
    wait_for(lambda: _epochs_checkpointed(run_dir) >= 4, 180, "four epochs checkpointed")
    running = ray_state.list_tasks(address=_here(), filters=[("name", "=", "fit_run"), ("state", "=", "RUNNING")])
    assert len(running) == 1
    os.kill(running[0]["worker_pid"], signal.SIGKILL)
    result = ray.get(ref, timeout=300)
    assert result.metrics["training_complete"] and result.metrics["epochs_done"] == 11
    state = load_state(result.checkpoint)
    assert len(state["resumed_at"]) == 1 and 4 <= state["resumed_at"][0] < 11  # resumed, not restarted
    assert math.isfinite(state["best_val"])
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint_000010", "checkpoint_000011"]  # the last two


def test_killed_one_worker_trial_resumes_from_its_tune_checkpoint(tise_data: Any, tmp_path: Path) -> None:
    """A one-worker search trial trains inside its Tune trial (no Ray Train): Tune retries it
    from its last checkpoint when its process dies."""
    job = _job(tise_data, tmp_path, method="sibcl", pretrain_epochs=3, finetune_epochs=8)
    assert job.trains_in_place
    trainable = tune.with_resources(tune.with_parameters(run_trial, job=job, datasets=trial_data(job)),
                                    trial_resources(job))
    tuner = tune.Tuner(trainable, param_space={"batch_size": 64},
                       run_config=tune.RunConfig(name="killed-trial", storage_path=str(tmp_path / "tune"),
                                                 failure_config=trial_failure_config(job), verbose=0))
    thread, box = _in_thread(tuner.fit)
    wait_for(lambda: len(list((tmp_path / "tune" / "killed-trial").glob("*/checkpoint_*"))) >= 4, 120,
              "four checkpoints")
    trials = ray_state.list_actors(address=_here(), filters=[("class_name", "=", "ImplicitFunc"), ("state", "=", "ALIVE")])
    assert len(trials) == 1
    os.kill(trials[0]["pid"], signal.SIGKILL)
    thread.join(300)
    assert "error" not in box, box.get("error")
    result = box["value"][0]
    assert result.error is None and result.metrics["training_complete"] and result.metrics["epochs_done"] == 11
    state = load_state(result.checkpoint)
    assert len(state["resumed_at"]) == 1 and 1 <= state["resumed_at"][0] < 11  # resumed, not restarted
    assert math.isfinite(state["best_val"])
    assert not list(tmp_path.glob("train/*"))  # no Ray Train run was made


def test_pretraining_and_label_metrics_reach_the_metrics_endpoint(tise_data: Any, tmp_path: Path) -> None:
    # Ray drops a gauge from the export ~20 s after its last update, and on a slow machine label generation can be
    # over before pretraining reports: keep, for each metric, the last scrape that held it.
    job = _job(tise_data, tmp_path, method="ssl", pretrain_epochs=8, finetune_epochs=1)
    run = ray.remote(fit_run).options(**_task_options(job)).remote(job, {}, "metrics-run")  # as a benchmark runs it
    thread, box = _in_thread(lambda: ray.get(run))
    labels, _ = _in_thread(lambda: generate("phc", {}, {"test": 80}, tmp_path / "data", seed=9, shard_size=10, progress=False))
    port = ray.nodes()[0]["MetricsExportPort"]

    wanted = ("ray_sibcl_labels_generated_total", "ray_sibcl_labels_per_second", "ray_sibcl_pretrain_samples_per_second")
    scraped: dict[str, str] = {}

    def scrape() -> bool:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        scraped.update({name: text for name in wanted if name in text})
        return len(scraped) == len(wanted)

    try:
        wait_for(scrape, 120, "sibcl metrics on the metrics endpoint")
    except AssertionError:
        raise AssertionError(f"only {sorted(scraped)} of {wanted} reached the metrics endpoint") from None
    thread.join(120)
    labels.join(120)
    assert "error" not in box, box.get("error")

    def values(name: str, problem: str) -> list[float]:
        pattern = rf'^{name}\{{[^}}]*problem="{problem}"[^}}]*\}} ([0-9.e+-]+)$'
        return [float(v) for v in re.findall(pattern, scraped[name], re.M)]

    assert sum(values("ray_sibcl_labels_generated_total", "tise")) >= 380  # 200 + 100 + 40 + 40 generated above
    labelled = values("ray_sibcl_labels_per_second", "phc")
    assert labelled and all(0.05 < v < 1000 for v in labelled)  # phc labels: ~0.1 s each per core
    assert 1 < max(values("ray_sibcl_pretrain_samples_per_second", "tise")) < 1e6


def test_nan_in_data_stops_the_run_with_a_clear_status(tise_data: Any, tmp_path: Path) -> None:
    clean = shards.read_split(tise_data.paths["train"], 40)
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    x = clean["x"].copy()
    x[3, 5, 5] = np.nan
    path = poisoned / shards.shard_name(0)
    shards.write_shard(path, 0, x, clean["y"])
    splits = {"train": ([str(path)], 40), "val": ([str(p) for p in tise_data.paths["val"]], 40)}
    result = fit_run(_job(tise_data, tmp_path, splits=splits, finetune_epochs=5), {"finetune_batch_size": 40}, "nan-run")
    assert result.metrics["val_error"] == math.inf
    assert result.metrics["epochs_done"] == 1 and not result.metrics["training_complete"]
    assert "non-finite fine-tuning loss (nan) at epoch 1" in result.metrics["stopped_reason"]


def test_killed_label_task_is_retried(tmp_path: Path) -> None:
    counts = {"train": 40}
    thread, box = _in_thread(lambda: generate("phc", {}, counts, tmp_path, seed=5, shard_size=10, progress=False))

    def running_worker_pid() -> int | None:
        tasks = ray_state.list_tasks(address=_here(), filters=[("func_or_class_name", "=", "_make_shard"), ("state", "=", "RUNNING")])
        for task in tasks:
            workers = ray_state.list_workers(address=_here(), filters=[("worker_id", "=", task["worker_id"])]) if task.get("worker_id") else []
            if workers:
                return workers[0]["pid"]
        return None

    os.kill(wait_for(running_worker_pid, 60, "a running label task"), signal.SIGKILL)
    thread.join(300)
    assert "error" not in box, box.get("error")
    report = box["value"]
    data = shards.read_split(report.paths["train"], 40)
    assert np.array_equal(data["index"], np.arange(40)) and np.all(np.isfinite(data["y"]))
    attempts = ray_state.list_tasks(address=_here(), filters=[("func_or_class_name", "=", "_make_shard")], detail=True, limit=1000)
    assert any(t["attempt_number"] > 0 for t in attempts)  # one shard really ran twice


def test_killed_generation_run_recomputes_only_missing_shards(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sibcl_ray.generate", "--problem", "phc", "--preset", "smoke", "--splits", "test",
               "--count", "test=200", "--data-dir", str(tmp_path), "--num-cpus", "1"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    manifest = lambda: next(tmp_path.glob("phc-*/test/manifest.json"), None)  # noqa: E731
    wait_for(lambda: manifest() and len(json.loads(manifest().read_text())["shards"]) >= 2, 240, "two shards")
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started, mid-run
    first.wait(30)
    done_before = len(json.loads(manifest().read_text())["shards"])
    assert done_before < 4
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout[second.stdout.index("{"): second.stdout.rindex("}") + 1])
    assert summary["samples_computed"] == {"test": 200 - 50 * done_before}
    final = json.loads(manifest().read_text())["shards"]
    assert len(final) == 4 and sum(e["rows"] for e in final.values()) == 200
    data = shards.read_split(shards.verified_shards(manifest().parent, 200, 50, labelled=True), 200)
    assert np.array_equal(data["index"], np.arange(200))
