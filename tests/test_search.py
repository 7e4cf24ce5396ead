"""Search logic (stored Optuna study, warm start, TPE + ASHA, outputs) with a fast plain
function trainable on real Ray Tune; the study is read back as a user would, with
``optuna.load_study`` on the journal file."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray import tune

from sibcl_ray.presets import get_preset
from sibcl_ray.search.outputs import SEARCH_PLOTS, plot_search, plotted_study, trial_rows, write_trials_csv
from sibcl_ray.search.searcher import load_search_study, study_storage
from sibcl_ray.search.run import SearchSettings, _new_tuner, best_finetuned
from sibcl_ray.search.space import default_space_path, load_space, reference_point, within
from sibcl_ray.train.runs import RunSpec

pytestmark = pytest.mark.usefixtures("ray_session")

#: Start points that make a trial misbehave on purpose (temperatures no sampler hits exactly).
RAISES, NON_FINITE = 0.7777, 0.6666


def synthetic_trial(config: dict) -> None:
    """Validation error with a known optimum (temperature 0.1, mix 0.3) that improves with epochs."""
    if config["temperature"] == RAISES:
        raise RuntimeError("synthetic failure")
    quality = math.log(config["temperature"] / 0.1) ** 2 + 4 * (config["mix_ratio"] - 0.3) ** 2
    for epoch in range(1, 9):
        error = math.nan if config["temperature"] == NON_FINITE and epoch == 2 else 0.05 + quality + 1.0 / epoch
        report = {"val_error": error, "rung_error": error, "epochs_done": epoch,
                  "phase": "pretrain" if epoch <= 2 else "finetune", "training_complete": epoch == 8}
        if not math.isfinite(error):
            tune.report({**report, "val_error": math.inf, "rung_error": math.inf, "stopped_reason": "non-finite loss"})
            return
        tune.report(report)


def _settings(tmp_path: Path, seed: int, num_samples: int = 8, start: tuple = ()) -> tuple[SearchSettings, RunSpec]:
    preset = get_preset("smoke", pretrain_epochs=2, finetune_epochs=6, grace_period=2, reduction_factor=2)
    space = load_space(default_space_path("phc"))
    settings = SearchSettings(problem="phc", problem_options={}, preset=preset, space=space, output=tmp_path,
                              storage=str(tmp_path), data_root=tmp_path, seed=seed, num_samples=num_samples,
                              max_concurrent=2, workers_per_trial=1, cpus_per_worker=1, gpus_per_worker=0,
                              start=start)
    job = RunSpec(problem="phc", problem_options={}, method="sibcl", model_size="small", pretrain_epochs=2,
                  finetune_epochs=6, nsam=10, seed=seed, splits={}, storage_path=str(tmp_path / "train"),
                  experiment=f"synthetic-{seed}", pretrain_steps=4, surrogate_steps=2)
    return settings, job


def _search(tmp_path: Path, seed: int, start: tuple = (), num_samples: int = 8) -> tuple[tune.ResultGrid, SearchSettings]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings, job = _settings(tmp_path, seed, num_samples=num_samples, start=start)
    trainable = tune.with_resources(synthetic_trial, {"cpu": 0, "trial_driver": 1})
    return _new_tuner(settings, job, trainable, str(tmp_path / "tune"), tmp_path / "status.json").fit(), settings


def _stored_study(folder: Path, seed: int) -> optuna.Study:
    """The study as a user loads it: Optuna's own client on the journal file."""
    return optuna.load_study(study_name=f"synthetic-{seed}",
                             storage=JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))))


@pytest.mark.slow
def test_tpe_asha_search_is_seeded_stops_bad_trials_and_writes_outputs(tmp_path: Path) -> None:
    results, settings = _search(tmp_path / "a", seed=3)
    assert len(results) == 8 and results.num_errors == 0
    configs = [r.config for r in results]
    assert all(within(settings.space, c) for c in configs)
    epochs = [r.metrics["epochs_done"] for r in results]
    assert max(epochs) == 8 and min(epochs) < 8  # ASHA stopped at least one trial early
    best = best_finetuned(results, settings.space)
    finetuned = [r for r in results if r.metrics["phase"] == "finetune"]
    assert best.metrics["val_error"] == min(r.metrics["val_error"] for r in finetuned)
    # the reference settings are kept unless beaten by more than the trials' seed spread
    reference = next(r for r in finetuned if r.config == {**r.config, **reference_point(settings.space)[0]})
    challenger = min((r for r in finetuned if r is not reference), key=lambda r: r.metrics["val_error"])
    saved = {id(r): dict(r.metrics) for r in finetuned}
    reference.metrics["val_error"] = challenger.metrics["val_error"] + 0.001  # the challenger wins by 0.001
    for spread, kept in ((0.002, reference), (0.0005, challenger)):
        for r in finetuned:
            r.metrics["val_error_seed_spread"] = spread
        assert best_finetuned(results, settings.space) is kept, spread
    for r in finetuned:
        r.metrics.clear()
        r.metrics.update(saved[id(r)])

    import json

    statuses = json.loads((tmp_path / "a" / "status.json").read_text())
    rows = trial_rows(results, statuses, settings.space)
    assert {r["outcome"] for r in rows} <= {"completed", "stopped_by_asha"} and len(rows) == 8
    assert sum(r["outcome"] == "completed" for r in rows) == sum(e == 8 for e in epochs)
    write_trials_csv(rows, tmp_path / "trials.csv")
    with open(tmp_path / "trials.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8 and len({r["trial_id"] for r in table}) == 8 and "temperature" in table[0]
    shown = plot_search(load_search_study(tmp_path / "a", "synthetic-3"), tmp_path / "a")
    ranked = shown.pop("search_importances.png")  # as many parameters as trials: too few to rank them
    assert ranked.startswith("not drawn:") and "cannot rank" in ranked, ranked
    assert set(shown) == set(SEARCH_PLOTS) - {"search_importances.png"}
    assert not any(s.startswith("not drawn") for s in shown.values()), shown
    for name in shown:
        assert (tmp_path / "a" / name).stat().st_size > 10_000

    study = _stored_study(tmp_path / "a", 3)
    assert len(study.trials) == 8
    assert study.trials[0].params == reference_point(settings.space)[0]  # warm start: the reference first
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    for trial in study.trials:  # every trial's rung values are kept, at epochs_done
        assert trial.intermediate_values and min(trial.intermediate_values) == 1
        if trial.state == TrialState.COMPLETE:
            assert trial.value == pytest.approx(trial.intermediate_values[8])
        else:  # Optuna's value of a pruned trial is its last intermediate value, never a COMPLETE
            assert max(trial.intermediate_values) < 8 and trial.user_attrs["outcome"] == "stopped_by_asha"
    assert study.best_value == pytest.approx(best.metrics["val_error"])

    # same seed, same start-up proposals (later TPE proposals depend on which trial ends first)
    key = lambda c: (round(c["temperature"], 12), round(c["mix_ratio"], 12))  # noqa: E731
    firsts = {key(t.params) for t in study.trials[:2]}
    _search(tmp_path / "b", seed=3, num_samples=2)
    assert {key(t.params) for t in _stored_study(tmp_path / "b", 3).trials[:2]} == firsts
    _search(tmp_path / "c", seed=4, num_samples=2)
    assert {key(t.params) for t in _stored_study(tmp_path / "c", 4).trials[:2]} != firsts


@pytest.mark.slow
def test_failed_and_non_finite_trials_are_fail_in_the_stored_study(tmp_path: Path) -> None:
    space = load_space(default_space_path("phc"))
    reference = reference_point(space)[0]
    start = ({**reference, "temperature": RAISES}, {**reference, "temperature": NON_FINITE})
    results, _ = _search(tmp_path, seed=5, start=start, num_samples=3)
    study = _stored_study(tmp_path, 5)
    by_temperature = {t.params["temperature"]: t for t in study.trials}
    assert study.trials[0].params == reference and len(study.trials) == 3
    assert by_temperature[RAISES].state == TrialState.FAIL and by_temperature[RAISES].user_attrs["outcome"] == "error"
    assert by_temperature[NON_FINITE].state == TrialState.FAIL
    assert by_temperature[NON_FINITE].user_attrs["outcome"] == "non_finite_loss"
    assert sorted(by_temperature[NON_FINITE].intermediate_values) == [1]  # the finite report before it
    assert results.num_errors == 1


def _quick_like_study(folder: Path, completed: int, pruned: int) -> None:
    """A stored study shaped like a quick search's end: ``completed`` trials to epoch 6, ``pruned`` stopped
    by ASHA at epoch 2; the rung error at epoch 2 grows with temperature alone."""
    study = optuna.create_study(study_name="quick-like", storage=study_storage(folder), direction="minimize")
    distributions = {"temperature": optuna.distributions.FloatDistribution(0.03, 1.0, log=True),
                     "mix_ratio": optuna.distributions.FloatDistribution(0.0, 0.9)}
    for i in range(completed + pruned):
        params = {"temperature": 0.03 + 0.15 * i, "mix_ratio": (0.37 * i) % 0.9}
        epochs = range(1, 7) if i < completed else range(1, 3)
        values = {e: params["temperature"] + 1.0 / e for e in epochs}
        state = TrialState.COMPLETE if i < completed else TrialState.PRUNED
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, state=state,
                                                  intermediate_values=values,
                                                  value=values[6] if i < completed else None))


def test_a_search_of_mostly_stopped_trials_plots_every_trial_at_their_common_epoch(tmp_path: Path) -> None:
    """1 COMPLETE + 5 PRUNED (a quick search): Optuna's own plots would show one trial (every importance
    1/7, one dot); compared at the last epoch all six reached, temperature is what matters."""
    _quick_like_study(tmp_path, completed=1, pruned=5)
    compared, basis = plotted_study(optuna.load_study(study_name="quick-like", storage=study_storage(tmp_path)))
    assert len(compared.trials) == 6 and basis.startswith("rung_error at epoch 2, the last epoch all 6 trials")
    importances = optuna.importance.get_param_importances(compared)
    assert max(importances, key=importances.get) == "temperature" and importances["temperature"] > 0.5
    shown = plot_search(load_search_study(tmp_path, "quick-like"), tmp_path)
    assert set(shown) == set(SEARCH_PLOTS) and all(what.startswith(("rung_error", "every")) for what in shown.values())
    for name in shown:
        assert (tmp_path / name).stat().st_size > 10_000


def test_a_plot_of_one_trial_is_left_out_with_the_reason(tmp_path: Path) -> None:
    _quick_like_study(tmp_path, completed=1, pruned=0)
    (tmp_path / "search_slice.png").write_bytes(b"an earlier run's picture")
    shown = plot_search(load_search_study(tmp_path, "quick-like"), tmp_path)
    assert shown["search_slice.png"].startswith("not drawn: 1 completed trial(s)")
    assert not (tmp_path / "search_slice.png").exists()  # no picture that looks like information and is not
    assert (tmp_path / "search_intermediate.png").stat().st_size > 10_000
