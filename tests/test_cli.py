"""The main job as a user runs it: `python -m sibcl_ray.tune`, in a subprocess."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sibcl_ray.search.space import default_space_path, load_space, within


def _tune(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "sibcl_ray.tune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--problem", "maxwell"], "error: unknown problem 'maxwell': allowed values are phc, tise"),
        (["--problem", "phc", "--preset", "huge"], "error: unknown preset 'huge': allowed values are smoke, quick, paper"),
        (["--problem", "phc", "--nsam", "0"], "error: --nsam 0 is out of range"),
        (["--problem", "phc", "--num-samples", "0"], "error: --num-samples 0 must be at least 1"),
        (["--problem", "phc", "--dim", "2"], "error: --dim 2 applies to --problem tise only"),
        (["--problem", "phc", "--search-space", "/nonexistent.yaml"], "error: search space /nonexistent.yaml: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = _tune(*args, "--output", str(tmp_path / "out"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _tune("--problem", "phc", "--preset", "smoke", "--output", str(out), "--data-dir", str(tmp_path / "data"),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ray dashboard: http://127.0.0.1:8265" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("problem", "preset", "best_config", "val_error", "test_error", "nsam", "n_trials", "wall_s"):
        assert key in summary
    assert summary["problem"] == "phc" and summary["preset"] == "smoke" and summary["n_trials"] == 2
    assert math.isfinite(summary["val_error"]) and math.isfinite(summary["test_error"])
    # an untrained network is far off: the relative L1 error of predicting the empty lattice is ~0.3+
    assert 0 < summary["test_error"] < 0.3
    assert within(load_space(default_space_path("phc")), summary["best_config"])
    assert summary["labels_computed"] > 0
