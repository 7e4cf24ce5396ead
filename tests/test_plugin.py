"""A problem from another package, run as a user runs it: the example plugin
(``examples/sibcl-composite``, installed by the README's set-up) found through its entry point
by ``tune`` and ``benchmark``, with its own command-line options."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sibcl_ray.presets import get_preset
from sibcl_ray.problems import ENTRY_POINT_GROUP, available_problems


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"sibcl_ray.{module}", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=900)


def test_the_example_plugin_is_installed_and_registered() -> None:
    assert available_problems().get("composite") == "sibcl_composite:EffectiveConductivity", (
        f"no 'composite' in the {ENTRY_POINT_GROUP!r} entry points: pip install ./examples/sibcl-composite")


@pytest.mark.slow
def test_a_plugin_problem_runs_a_search_and_a_benchmark_with_its_own_options(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    search = _run("tune", "--problem", "composite", "--label", "sigma_eff", "--preset", "smoke", "--num-samples", "1",
                  "--output", str(tmp_path / "search"), "--data-dir", data, cwd=tmp_path)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    summary = json.loads((tmp_path / "search" / "summary.json").read_text())
    assert summary["problem"] == "composite" and summary["problem_options"] == {"label": "sigma_eff"}
    assert summary["n_trials_completed"] == 1 and math.isfinite(summary["test_error"])
    repeat = get_preset(str(tmp_path / "search" / "run_config.yaml"), problem="composite")  # what the run resolved
    assert repeat == replace(get_preset("smoke", problem="composite"), num_samples=1)
    model = json.loads((tmp_path / "search" / "model" / "model.json").read_text())
    assert model["problem"] == "composite" and model["problem_options"] == {"label": "sigma_eff"}

    bench = _run("benchmark", "--problem", "composite", "--label", "sigma_eff", "--preset", "smoke", "--methods",
                 "sibcl,sl", "--nsam", "25", "--seeds", "1", "--output", str(tmp_path / "bench"), "--data-dir", data,
                 cwd=tmp_path)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    repeat = get_preset(str(tmp_path / "bench" / "run_config.yaml"), problem="composite")
    assert (repeat.name, repeat.bench_nsam, repeat.bench_seeds) == ("smoke", (25,), 1)
    assert {m: math.isfinite(results["aggregate"][m]["25"]["mean"]) for m in ("sibcl", "sl")} == {"sibcl": True, "sl": True}

    # the plugin's options are its own: another problem refuses them in one line, before Ray
    wrong = _run("tune", "--problem", "tise", "--coarsen", "2", "--output", str(tmp_path / "x"), cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "error: --coarsen 2 is not an option of --problem 'tise'; it applies to --problem composite")
