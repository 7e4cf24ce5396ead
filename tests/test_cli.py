"""The main job as a user runs it: `python -m sibcl_ray.tune`, in a subprocess.

Stopping and resuming a search is tested through `ray job stop` / `--resume` in test_jobs.py
(SIGTERM there takes the same path as Ctrl-C here: session.stop_on_sigterm_like_ctrl_c).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pytest

from sibcl_ray.data.shards import read_split
from sibcl_ray.train.checkpoints import load_state, readable_state


def _tune(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "sibcl_ray.tune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_smoke_search_with_two_ddp_workers_exports_a_usable_model_and_tracks_it(tmp_path: Path,
                                                                               another_local_ray: None) -> None:
    """Two Train workers per trial (gloo): the global-batch NT-Xent and the split batches run for real;
    the selected model comes out as a folder a fresh process loads, and MLflow holds the trials.
    Another local Ray runs meanwhile: with two on the machine, Ray Train's placement-group cleaner
    lost track of its own cluster, the finished trial's CPUs stayed reserved and the search hung."""
    out = tmp_path / "out"
    result = _tune("--problem", "phc", "--preset", "smoke", "--num-samples", "1", "--workers-per-trial", "2",
                   "--output", str(out), "--data-dir", str(tmp_path / "data"), "--tracker", "mlflow", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"Ray dashboard: http://127\.0\.0\.1:\d+", result.stdout)  # 8265 unless another Ray holds it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials_completed"] == 1 and 0 < summary["test_error"] < 0.3
    state = load_state(next(p for p in sorted(out.glob("train/*/checkpoint_*")) if readable_state(p)))
    assert state["config"]["hparams"]["batch_size"] == 96  # the global batch; each rank took 48
    # smoke fine-tunes with 2 seeds (two DDP-wrapped copies): scored by their mean, the best one kept
    assert len(summary["val_error_per_seed"]) == 2 and len(set(summary["val_error_per_seed"])) == 2
    assert summary["val_error"] == pytest.approx(sum(summary["val_error_per_seed"]) / 2, rel=1e-6)
    assert summary["model_val_error"] == min(summary["val_error_per_seed"])
    assert summary["seed"] == 0 and "--workers-per-trial 2" in summary["command"]
    assert summary["versions"]["ray"] == "2.60.0" and summary["versions"]["torch"]
    _only_the_selected_checkpoint_is_left(out, summary)

    # the exported model, in a fresh process, with weights_only loading, reproduces the test error
    check = (
        "import json, sys, torch, numpy as np, sibcl_ray\n"
        "from pathlib import Path\n"
        "from sibcl_ray.data.shards import read_split\n"
        "out = Path(sys.argv[1]); s = json.loads((out / 'summary.json').read_text())\n"
        "torch.load(out / 'model' / 'model.pt', weights_only=True)\n"
        "p = sibcl_ray.load_model(out / 'model')\n"
        "d = read_split(sorted(Path(s['data'], 'test').glob('shard-*.parquet')), s['n_test'])\n"
        "print(json.dumps({'test_error': float(np.mean(p.errors(d['x'], d['y'])))}))\n")
    fresh = subprocess.run([sys.executable, "-c", check, str(out)], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert json.loads(fresh.stdout.splitlines()[-1])["test_error"] == pytest.approx(summary["test_error"], abs=1e-6)
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["test_error"] == summary["test_error"] and model["hparams"]["batch_size"] == 96
    assert model["val_error"] == summary["model_val_error"]
    assert model["nsam"] == summary["nsam"] and model["label_axis"]["name"].startswith("normalised frequency")

    for picture in ("test_predictions.png", "embedding.png"):  # drawn, not blank
        pixels = matplotlib.image.imread(out / picture)
        assert 300 < pixels.shape[0] < 2000 and 500 < pixels.shape[1] < 3000
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50

    # MLflow's own client finds the trial and its metrics in the search's store
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[summary["study"]["name"]])
    assert len(runs) == 1
    assert runs["metrics.val_error"].iloc[0] == pytest.approx(summary["val_error"])
    assert float(runs["params.temperature"].iloc[0]) == pytest.approx(summary["best_config"]["temperature"])
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout


@pytest.mark.slow
def test_a_search_with_select_fine_tunes_every_trial_on_labels_picked_from_the_unlabeled_pool(tmp_path: Path) -> None:
    """``--select``: one reference pretraining picks the search's labels from the unlabeled pool, they
    are solved on demand, and no labelled pool is drawn at all."""
    out, data = tmp_path / "out", tmp_path / "data"
    result = _tune("--problem", "phc", "--preset", "smoke", "--num-samples", "1", "--finetune-seeds", "1",
                   "--select", "kcenter", "--output", str(out), "--data-dir", str(data), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # a readable terminal: Tune's forced-snapshot warning came 4 lines at a time, once per few epochs
    assert "snapshotting has been triggered" not in result.stdout + result.stderr
    assert summary["selection"]["strategy"] == "kcenter" and summary["selection"]["labels_solved"] == 50
    assert summary["n_trials_completed"] == 1 and 0 < summary["test_error"] < 0.3
    assert not list(data.glob("*/train"))  # no randomly drawn labelled pool was made
    picked = read_split([Path(summary["selection"]["labels"])], 50)
    unlabeled = read_split(sorted(data.glob("*/unlabeled/shard-*.parquet")), 200)
    record = json.loads(Path(summary["selection"]["labels"]).with_name("selection.json").read_text())
    assert np.array_equal(picked["x"], unlabeled["x"][record["indices"]]) and len(set(record["indices"])) == 50
    assert "select: 50 inputs picked by kcenter from the unlabeled pool, 50 labels solved" in result.stdout
    _only_the_selected_checkpoint_is_left(out, summary)


def _only_the_selected_checkpoint_is_left(out: Path, summary: dict) -> None:
    """A finished search keeps the selected model's checkpoint (and model/), not two per trial (the
    label-picking pretraining of --select keeps its own: a rerun reuses it)."""
    left = [p.resolve() for p in out.glob("**/checkpoint_*") if p.is_dir() and "select-pretrain" not in str(p)]
    assert left == [Path(summary["best_checkpoint"]).resolve()] and summary["checkpoints_deleted"] >= 1, left
