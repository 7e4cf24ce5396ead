"""`python -m sibcl_ray.benchmark` as a user runs it: real Ray Train runs, resumable cells, the report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_benchmark_runs_every_cell_once_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset", "smoke",
               "--methods", "tl-i,sl", "--nsam", "25,50", "--seeds", "1", "--output", str(out),
               "--data-dir", str(tmp_path / "data")]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    for method in ("tl-i", "sl"):
        for nsam in ("25", "50"):
            cell = results["aggregate"][method][nsam]
            assert cell["n_seeds"] == 1 and math.isfinite(cell["mean"]) and 0 < cell["mean"] < 1
    assert results["savings"] == {}  # savings are SIB-CL's, and sibcl was not among the methods
    assert "| tl-i |" in (out / "results.md").read_text()
    assert (out / "label_efficiency.png").stat().st_size > 10_000
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["sl-n25-s0.json", "sl-n50-s0.json", "tl-i-n25-s0.json", "tl-i-n50-s0.json"]
    # pretraining once per pretraining method, reused by every budget; sl never pretrains
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-tl-i-s0"]
    assert len(list((out / "train").glob("finetune-*"))) == 4

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps  # nothing rerun
    assert json.loads((out / "results.json").read_text())["aggregate"] == results["aggregate"]
