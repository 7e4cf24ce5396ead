"""Trials started and ended, by outcome, as Ray metrics (``monitoring``), from Tune's callback hooks.

Tune calls ``on_trial_complete`` both for a trial that trained to the end and for one its
scheduler (ASHA) stopped; the outcome is told apart from the trial's last result as trials.csv
does (``search.outputs.trial_rows``): ``training_complete``, ``stopped_reason`` (non-finite loss).
A trial is counted once per search process: a retried trial starts again (``on_trial_start``)
without being a new trial.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from sibcl_ray.monitoring import record_trial_ended, record_trial_started
from sibcl_ray.search.outputs import COMPLETED, ERROR, NON_FINITE, STOPPED


def outcome_of(last_result: dict[str, Any]) -> str:
    """The outcome of a trial Tune completed (not errored), from its last reported result."""
    if last_result.get("stopped_reason"):
        return NON_FINITE
    return COMPLETED if last_result.get("training_complete") else STOPPED


class TrialCounts(tune.Callback):
    """Counts trial starts and ends of one search into ``sibcl_trials_started`` / ``sibcl_trials_ended``."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self._started: set[str] = set()
        self._ended: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id not in self._started:
            self._started.add(trial.trial_id)
            record_trial_started(self.problem)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial.trial_id, outcome_of(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial.trial_id, ERROR)

    def _end(self, trial_id: str, outcome: str) -> None:
        if trial_id not in self._ended:
            self._ended.add(trial_id)
            record_trial_ended(self.problem, outcome)
