"""Test-set evaluation of a selected model: the whole set, once (no Ray here).

The same :class:`~sibcl_ray.predictor.Predictor` a user loads from ``<output>/model`` does
the predicting, so the exported model reproduces the reported test error by construction.
With ``keep_arrays`` the predictions and the encoder's validation features come back too,
for ``test_predictions.png`` and ``embedding.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sibcl_ray.data.shards import read_split
from sibcl_ray.predictor import build_predictor
from sibcl_ray.problems import get_problem
from sibcl_ray.train.checkpoints import load_state, selected_weights


def evaluate(problem_name: str, problem_options: dict[str, Any], model_size: str, checkpoint_dir: str,
             test_paths: list[Path], count: int, val_paths: list[Path] | None = None, n_val: int = 0,
             keep_arrays: bool = False) -> dict[str, Any]:
    """Test error of the checkpoint's selected (best-validation) model on the first ``count``
    test samples; with ``keep_arrays`` also ``arrays``: test predictions, true labels, errors,
    and the encoder's features and label scalar on the first ``n_val`` validation samples."""
    spec = get_problem(problem_name, **problem_options).network_spec(model_size)
    predictor = build_predictor(problem_name, problem_options, spec, selected_weights(load_state(checkpoint_dir)))
    data = read_split(test_paths, count)
    predicted = predictor.predict(data["x"])
    errors = predictor.problem.errors(predicted, data["y"])
    out: dict[str, Any] = {"test_error": float(np.mean(errors)), "test_error_std": float(np.std(errors)),
                           "n_test": int(len(errors))}
    if keep_arrays:
        arrays = {"test_predicted": predicted, "test_true": data["y"], "test_errors": errors}
        if val_paths:
            val = read_split(val_paths, n_val)
            name, scalar = predictor.problem.label_scalar(val["y"])
            arrays |= {"val_features": predictor.features(val["x"]), "val_scalar": scalar, "val_scalar_name": name}
        out["arrays"] = arrays
    return out
