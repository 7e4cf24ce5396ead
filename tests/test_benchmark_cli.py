"""`python -m sibcl_ray.benchmark` as a user runs it: real Ray Train runs, resumable cells, the report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sibcl_ray
from sibcl_ray.data.shards import read_split
from sibcl_ray.train.checkpoints import load_state


@pytest.mark.slow
def test_benchmark_runs_every_cell_once_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset", "smoke",
               "--methods", "tl-i,sl", "--nsam", "25", "--seeds", "1", "--output", str(out),
               "--data-dir", str(tmp_path / "data"), "--workers-per-run", "2"]  # every run DDP over 2 gloo workers
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    for method in ("tl-i", "sl"):  # one budget: DDP cells cost ~40 s each on 2 cores
        cell = results["aggregate"][method]["25"]
        assert cell["n_seeds"] == 1 and math.isfinite(cell["mean"]) and 0 < cell["mean"] < 1
    assert results["savings"] == {}  # savings are SIB-CL's, and sibcl was not among the methods
    assert "| tl-i |" in (out / "results.md").read_text()
    assert (out / "label_efficiency.png").stat().st_size > 10_000
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["sl-n25-s0.json", "tl-i-n25-s0.json"]
    # pretraining once per pretraining method, reused by every budget; sl never pretrains
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-tl-i-s0"]
    assert len(list((out / "train").glob("finetune-*"))) == 2
    state = load_state(next(iter(sorted((out / "train" / "pretrain-tl-i-s0").glob("checkpoint_*")))))
    assert state["config"]["hparams"]["batch_size"] == 96  # the global batch, 48 on each of the 2 ranks

    assert results["seed"] == 0 and results["versions"]["ray"] == "2.60.0" and "models" not in results

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    again = subprocess.run([*command, "--export"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps  # nothing rerun
    assert json.loads((out / "results.json").read_text())["aggregate"] == results["aggregate"]

    # --export on finished cells: each cell's selected model as a folder that reproduces its test error
    assert sorted(p.name for p in (out / "models").iterdir()) == [c[:-5] for c in cells]
    for cell in results["cells"]:
        folder = out / "models" / f"{cell['method']}-n{cell['nsam']}-s{cell['seed']}"
        assert (folder / "test_predictions.png").stat().st_size > 10_000 and (folder / "embedding.png").exists()
        model = json.loads((folder / "model.json").read_text())
        assert (model["method"], model["nsam"], model["test_error"]) == (cell["method"], cell["nsam"], cell["test_error"])
    predictor = sibcl_ray.load_model(out / "models" / "sl-n25-s0")
    test = read_split(sorted((tmp_path / "data").glob("*/test/shard-*.parquet")), 50)  # smoke: 50 test samples
    sl25 = next(c for c in results["cells"] if (c["method"], c["nsam"]) == ("sl", 25))
    assert float(np.mean(predictor.errors(test["x"], test["y"]))) == pytest.approx(sl25["test_error"], abs=1e-6)


@pytest.mark.slow
def test_cells_fine_tune_from_several_checkpoints_and_keep_the_best_on_validation(tmp_path: Path) -> None:
    """``bench_checkpoints``: a pretraining method's cell fine-tunes from each kept pretraining
    checkpoint, a method that does not pretrain from as many initial seeds (the same budget), and
    each keeps the try with the lowest validation error; the kept checkpoints survive pruning."""
    preset = tmp_path / "tries.yaml"
    preset.write_text("base: smoke\npretrain_epochs: 4\nbench_checkpoints: [0.25, 1.0]\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset",
                           str(preset), "--methods", "tl,sl", "--nsam", "25", "--seeds", "1", "--output", str(out),
                           "--data-dir", str(tmp_path / "data")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pretraining = out / "train" / "pretrain-tl-s0-ckpts"
    kept = sorted(load_state(p)["epochs_done"] for p in pretraining.glob("checkpoint_*"))
    assert kept == [1, 3, 4]  # epoch 1 kept for the cells, then the last two
    cells = {c["method"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert [t["from_epoch"] for t in cells["tl"]["tries"]] == [1, 4]
    assert [t["seed"] for t in cells["sl"]["tries"]] == [0, 1000] and {t["from_epoch"] for t in cells["sl"]["tries"]} == {None}
    for cell in cells.values():
        vals = [t["val_error"] for t in cell["tries"]]
        assert len(set(vals)) == 2  # two different runs
        assert cell["selected_try"] == int(np.argmin(vals)) and cell["val_error"] == min(vals)
        assert cell["checkpoint"] == cell["tries"][cell["selected_try"]]["checkpoint"]
        assert math.isfinite(cell["test_error"])
    tl_from_1 = load_state(cells["tl"]["tries"][0]["checkpoint"])
    assert tl_from_1["config"]["init_state"] == str(next(p for p in pretraining.glob("checkpoint_*")
                                                         if load_state(p)["epochs_done"] == 1))
