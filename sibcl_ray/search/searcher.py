"""The search's Optuna side: a stored study that is told the truth about every trial.

Ray's ``OptunaSearch`` tells Optuna that a trial ASHA stopped is COMPLETE, with whatever
``val_error`` it last reported — during pretraining that is a zero-shot error on another
scale than the fine-tuned error the search minimises, so TPE learned from the wrong
numbers. ``StudySearch`` keeps the objective honest:

- a trial that ran to the end is COMPLETE with its fine-tuned ``val_error``;
- a trial the scheduler stopped is PRUNED, with its intermediate values (``rung_error`` at
  each ``epochs_done``, what ASHA compared) kept, so TPE ranks it by how far it got;
- a trial that raised, or whose loss or error went non-finite, is FAIL.

The study lives in ``<output>/optuna.journal`` (Optuna's ``JournalStorage``), so
``optuna.load_study``, ``optuna-dashboard <output>/optuna.journal`` and ``--resume`` all see
the same trials.

Example::

    storage = study_storage(Path("sibcl_runs/phc-quick"))
    searcher = StudySearch(metric="val_error", mode="min", storage=storage, study_name="phc-quick-…",
                           intermediate_metric="rung_error", points_to_evaluate=[reference_point])
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from sibcl_ray.search.outputs import COMPLETED, ERROR, NON_FINITE, STOPPED

JOURNAL_FILE = "optuna.journal"


def study_storage(output: Path) -> JournalStorage:
    """The journal storage of a search's study, in its output folder."""
    return JournalStorage(JournalFileBackend(str(Path(output) / JOURNAL_FILE)))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class StudySearch(OptunaSearch):
    """``OptunaSearch`` that reports PRUNED and FAIL as such and records intermediate values
    at ``epochs_done`` (Tune's ``training_iteration`` restarts after a restore)."""

    def __init__(self, *, intermediate_metric: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._intermediate_metric = intermediate_metric
        self._steps_reported: dict[str, set[int]] = {}

    def _setup_study(self, mode: Any) -> None:
        """Create or load the stored study, and queue each starting point only if the study
        has no trial with those parameters yet.

        ``OptunaSearch`` enqueues ``points_to_evaluate`` every time it sets the study up, and a
        restored search sets it up again on the same journal: the reference settings would be
        queued (and trained) a second time after every ``--resume``.
        """
        points, self._points_to_evaluate = self._points_to_evaluate, []
        try:
            super()._setup_study(mode)
        finally:
            self._points_to_evaluate = points
        for point in points:
            self._ot_study.enqueue_trial(point, skip_if_exists=True)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record ``intermediate_metric`` at ``epochs_done`` (each step once)."""
        ot_trial = self._ot_trials.get(trial_id)
        value, step = result.get(self._intermediate_metric), result.get("epochs_done")
        if ot_trial is None or trial_id in self._completed_trials or not _finite(value) or step is None:
            return
        seen = self._steps_reported.setdefault(trial_id, set())
        if int(step) in seen:
            return
        seen.add(int(step))
        with warnings.catch_warnings():  # a step reported before an interruption is ignored by Optuna
            warnings.simplefilter("ignore")
            ot_trial.report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        if result:  # the result that made the scheduler stop the trial reaches only this hook
            self.on_trial_result(trial_id, result)
        state, value, outcome = outcome_of(result, error, self.metric)
        ot_trial.set_user_attr("outcome", outcome)
        if result and result.get("stopped_reason"):
            ot_trial.set_user_attr("stopped_reason", str(result["stopped_reason"])[:500])
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)


def outcome_of(result: dict[str, Any] | None, error: bool, metric: str) -> tuple[TrialState, float | None, str]:
    """Optuna state, objective value and our outcome name for a trial's last result."""
    result = result or {}
    if error:
        return TrialState.FAIL, None, ERROR
    if result.get("stopped_reason") or (metric in result and not _finite(result[metric])):
        return TrialState.FAIL, None, NON_FINITE
    if result.get("training_complete") and _finite(result.get(metric)):
        return TrialState.COMPLETE, float(result[metric]), COMPLETED
    return TrialState.PRUNED, None, STOPPED


def load_search_study(output: Path, study_name: str) -> optuna.Study:
    """The stored study of a search, as ``optuna.load_study`` gives it to a user."""
    return optuna.load_study(study_name=study_name, storage=study_storage(output))
