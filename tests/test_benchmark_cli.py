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
from sibcl_ray.problems import get_problem
from sibcl_ray.train.checkpoints import load_state


@pytest.mark.slow
def test_benchmark_runs_every_cell_once_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset", "smoke",
               "--methods", "tl-i", "--nsam", "25", "--seeds", "1", "--output", str(out),
               "--data-dir", str(tmp_path / "data"), "--workers-per-run", "2"]  # every run DDP over 2 gloo workers
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    cell = results["aggregate"]["tl-i"]["25"]  # one method, one budget: DDP runs cost ~25 s each on 2 cores
    assert cell["n_seeds"] == 1 and math.isfinite(cell["mean"]) and 0 < cell["mean"] < 1
    assert results["savings"] == {}  # savings are SIB-CL's, and sibcl was not among the methods
    assert "| tl-i |" in (out / "results.md").read_text()
    assert (out / "label_efficiency.png").stat().st_size > 10_000
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["tl-i-n25-s0.json"]
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-tl-i-s0"]
    assert len(list((out / "train").glob("finetune-*"))) == 1
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
    predictor = sibcl_ray.load_model(out / "models" / "tl-i-n25-s0")
    test = read_split(sorted((tmp_path / "data").glob("*/test/shard-*.parquet")), 50)  # smoke: 50 test samples
    tl25 = results["cells"][0]
    assert float(np.mean(predictor.errors(test["x"], test["y"]))) == pytest.approx(tl25["test_error"], abs=1e-6)


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
        # the kept run's best validation error after each of smoke's 4 fine-tuning epochs, ending at the cell's
        curve = cell["finetune_val_curve"]
        assert len(curve) == 4 and curve == sorted(curve, reverse=True) and curve[-1] == pytest.approx(cell["val_error"])
    assert "Fine-tuning length" in (out / "results.md").read_text()
    tl_from_1 = load_state(cells["tl"]["tries"][0]["checkpoint"])
    assert tl_from_1["config"]["init_state"] == str(next(p for p in pretraining.glob("checkpoint_*")
                                                         if load_state(p)["epochs_done"] == 1))


@pytest.mark.slow
def test_picking_with_a_surrogate_pretrained_encoder_reads_the_pool_contrastive_learning_would(tmp_path: Path) -> None:
    """``tl-al`` picks with ``tl``'s encoder, whose pretraining never reads the unlabeled pool:
    the pool is still prepared for the pick (it once failed with KeyError 'unlabeled'), and no
    random labelled pool is generated when every method picks its own labels."""
    out, data = tmp_path / "out", tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset",
                           "smoke", "--methods", "tl-al", "--nsam", "20", "--seeds", "1", "--output", str(out),
                           "--data-dir", str(data)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tl-al: picked 20 inputs by typiclust, solved 20 labels" in done.stdout + done.stderr
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-tl-s0"]
    record = json.loads((out / "selected" / "tl-al-s0" / "n20" / "selection.json").read_text())
    assert record["pool"] == "unlabeled" and len(set(record["indices"])) == 20
    assert not list(data.glob("*/train/shard-*.parquet"))
    cell = json.loads((out / "results.json").read_text())["aggregate"]["tl-al"]["20"]
    assert math.isfinite(cell["mean"]) and 0 < cell["mean"] < 1


@pytest.mark.slow
def test_active_labelling_picks_unlabeled_inputs_solves_them_and_reports_against_random(tmp_path: Path) -> None:
    """``sibcl-al`` shares ``sibcl``'s pretraining, picks its labels from the unlabeled pool only
    (k-center: nested, so the larger budget's pick reuses the smaller's labels), solves them
    with the real solver, and the report compares it with random labelling at equal budgets."""
    out, data = tmp_path / "out", tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "sibcl_ray.benchmark", "--problem", "tise", "--dim", "2", "--preset",
                           "smoke", "--methods", "sibcl,sibcl-al", "--nsam", "20,40", "--seeds", "1", "--selection",
                           "kcenter", "--output", str(out), "--data-dir", str(data)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sibcl-al: picked 20, 40 inputs by kcenter, solved 40 labels" in done.stdout + done.stderr
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-sibcl-s0"]  # shared
    last = load_state(sorted((out / "train" / "pretrain-sibcl-s0").glob("checkpoint_*"))[-1])
    assert [h["epochs_done"] for h in last["history"]] == [1, 2]  # every epoch's numbers, kept with the run
    assert all(math.isfinite(h["contrastive_loss"]) and h["contrastive_loss"] > 0 for h in last["history"])

    unlabeled = read_split(sorted(data.glob("*/unlabeled/shard-*.parquet")), 10_000)
    held_out = np.concatenate([read_split(sorted(data.glob(f"*/{s}/shard-*.parquet")), 10_000)["x"]
                               for s in ("val", "test")])
    picks = {}
    for n in (20, 40):
        folder = out / "selected" / "sibcl-al-s0" / f"n{n}"
        record = json.loads((folder / "selection.json").read_text())
        picked = read_split([folder / "labels.parquet"], n)
        indices = np.array(record["indices"])
        assert len(set(indices.tolist())) == n and record["strategy"] == "kcenter" and record["pool"] == "unlabeled"
        assert np.array_equal(picked["x"], unlabeled["x"][indices])  # the pool's own inputs ...
        assert not (picked["x"][:, None] == held_out[None]).all(axis=(2, 3)).any()  # ... never validation or test
        picks[n] = (indices, picked["y"], record["labels_solved"])
    assert np.array_equal(picks[40][0][:20], picks[20][0])  # k-center nests: the first 20 of 40 are the 20
    assert np.array_equal(picks[40][1][:20], picks[20][1]) and picks[20][2] + picks[40][2] == 40  # solved once
    problem = get_problem("tise", dim=2)
    x = unlabeled["x"][picks[40][0][-3:]]
    assert np.allclose(picks[40][1][-3:], problem.target_labels(x), rtol=1e-5)  # the real solver's labels

    results = json.loads((out / "results.json").read_text())
    cells = {(c["method"], c["nsam"]): c for c in results["cells"]}
    assert cells["sibcl-al", 40]["selection"]["strategy"] == "kcenter"
    assert all(math.isfinite(c["test_error"]) for c in cells.values())
    assert list(results["selection_savings"]["sibcl-al"]) == ["20", "40"]
    assert "Active labelling" in (out / "results.md").read_text()
    assert [h["epochs_done"] for h in results["pretraining"]["sibcl"]] == [1, 2]  # the run's losses, drawn
    assert (out / "pretraining_loss.png").stat().st_size > 10_000
    assert len(read_split(sorted(data.glob("*/train/shard-*.parquet")), 10_000)["x"]) == 50  # sibcl's, one shard
