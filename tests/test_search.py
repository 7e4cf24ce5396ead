"""Search logic (Optuna TPE + ASHA + outputs) with a fast plain function trainable on real Ray Tune."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from ray import tune

from sibcl_ray.presets import get_preset
from sibcl_ray.train.runs import RunSpec
from sibcl_ray.search.outputs import plot_search, trial_rows, write_trials_csv
from sibcl_ray.search.run import SearchSettings, _new_tuner, best_finetuned
from sibcl_ray.search.space import default_space_path, load_space, within

pytestmark = pytest.mark.usefixtures("ray_session")


def synthetic_trial(config: dict) -> None:
    """Validation error with a known optimum (temperature 0.1, mix 0.3) that improves with epochs."""
    quality = math.log(config["temperature"] / 0.1) ** 2 + 4 * (config["mix_ratio"] - 0.3) ** 2
    for epoch in range(1, 9):
        tune.report({"val_error": 0.05 + quality + 1.0 / epoch, "epochs_done": epoch,
                     "phase": "pretrain" if epoch <= 2 else "finetune", "training_complete": epoch == 8})


def _settings(tmp_path: Path, seed: int, num_samples: int = 8) -> tuple[SearchSettings, RunSpec]:
    preset = get_preset("smoke", pretrain_epochs=2, finetune_epochs=6, grace_period=2, reduction_factor=2)
    space = load_space(default_space_path("phc"))
    settings = SearchSettings(problem="phc", problem_options={}, preset=preset, space=space, output=tmp_path,
                              storage=str(tmp_path), data_root=tmp_path, seed=seed, num_samples=num_samples,
                              max_concurrent=2, workers_per_trial=1, cpus_per_worker=1, gpus_per_worker=0)
    job = RunSpec(problem="phc", problem_options={}, method="sibcl", model_size="small", pretrain_epochs=2,
                   finetune_epochs=6, nsam=10, seed=seed, splits={}, storage_path=str(tmp_path / "train"),
                   experiment=f"synthetic-{seed}")
    return settings, job


def _search(tmp_path: Path, seed: int) -> tuple[tune.ResultGrid, SearchSettings]:
    settings, job = _settings(tmp_path, seed)
    trainable = tune.with_resources(synthetic_trial, {"cpu": 0, "trial_driver": 1})
    return _new_tuner(settings, job, trainable, str(tmp_path / "tune"), tmp_path / "status.json").fit(), settings


@pytest.mark.slow
def test_tpe_asha_search_is_seeded_stops_bad_trials_and_writes_outputs(tmp_path: Path) -> None:
    results, settings = _search(tmp_path / "a", seed=3)
    assert len(results) == 8 and results.num_errors == 0
    configs = [r.config for r in results]
    assert all(within(settings.space, c) for c in configs)
    epochs = [r.metrics["epochs_done"] for r in results]
    assert max(epochs) == 8 and min(epochs) < 8  # ASHA stopped at least one trial early
    best = best_finetuned(results)
    assert best.metrics["val_error"] == min(r.metrics["val_error"] for r in results if r.metrics["phase"] == "finetune")

    import json

    statuses = json.loads((tmp_path / "a" / "status.json").read_text())
    rows = trial_rows(results, statuses, settings.space)
    assert {r["outcome"] for r in rows} <= {"completed", "stopped_by_asha"} and len(rows) == 8
    assert sum(r["outcome"] == "completed" for r in rows) == sum(e == 8 for e in epochs)
    write_trials_csv(rows, tmp_path / "trials.csv")
    with open(tmp_path / "trials.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8 and len({r["trial_id"] for r in table}) == 8 and "temperature" in table[0]
    for png in plot_search(rows, settings.space, tmp_path):
        assert png.stat().st_size > 10_000

    # same seed, same start-up proposals (later TPE proposals depend on which trial ends first)
    again, _ = _search(tmp_path / "b", seed=3)
    key = lambda c: (round(c["temperature"], 12), round(c["mix_ratio"], 12))  # noqa: E731
    assert {key(c) for c in configs[:2]} == {key(r.config) for r in list(again)[:2]}
    other, _ = _search(tmp_path / "c", seed=4)
    assert {key(c) for c in configs[:2]} != {key(r.config) for r in list(other)[:2]}
