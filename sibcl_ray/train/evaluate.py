"""Test-set evaluation of a selected model: the whole set, once (no Ray here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sibcl_ray.data.shards import read_split
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.problems import get_problem
from sibcl_ray.train.checkpoints import load_state


@torch.no_grad()
def test_error(problem_name: str, problem_options: dict[str, Any], model_size: str, checkpoint_dir: str,
               test_paths: list[Path], count: int) -> dict[str, float]:
    """Error of the checkpoint's selected (best-validation) model on the first ``count`` test samples."""
    problem = get_problem(problem_name, **problem_options)
    state = load_state(checkpoint_dir)
    model = SIBCLNet(problem.model_spec(model_size), problem.label_dim)
    model.load_state_dict(state["best_model"] if state.get("best_model") is not None else state["model"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    data = read_split(test_paths, count)
    lo, hi = problem.input_range
    x = torch.from_numpy((data["x"] - lo) / (hi - lo)).float()
    predicted = torch.cat([model(x[i : i + 256].to(device), head="predict").cpu() for i in range(0, len(x), 256)]).numpy()
    errors = problem.errors(predicted + problem.label_offset(), data["y"])
    return {"test_error": float(np.mean(errors)), "test_error_std": float(np.std(errors)), "n_test": int(len(errors))}
