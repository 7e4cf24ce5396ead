"""The main job as a user runs it: `python -m sibcl_ray.tune`, in a subprocess."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sibcl_ray.errors import CheckpointError
from sibcl_ray.search.space import default_space_path, load_space, reference_point, within
from sibcl_ray.train.checkpoints import load_state


def _tune(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "sibcl_ray.tune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _ray_sessions() -> set[Path]:
    """The Ray session folders under this test run's RAY_TMPDIR (conftest)."""
    return set(Path(os.environ["RAY_TMPDIR"]).glob("ray/session_2*"))


def _readable_state(checkpoint: Path) -> dict | None:
    """A checkpoint's state, or None for one whose upload the SIGINT cut short (never registered)."""
    try:
        return load_state(checkpoint)
    except CheckpointError:
        return None


@pytest.mark.slow
def test_smoke_search_interrupted_then_resumed_end_to_end(tmp_path: Path) -> None:
    """SIGINT mid-search, then --resume: every trial exactly once, the running one from its checkpoint."""
    out = tmp_path / "out"
    args = ["--problem", "phc", "--preset", "smoke", "--num-samples", "3", "--max-concurrent", "1",
            "--output", str(out), "--data-dir", str(tmp_path / "data")]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    sessions_before = set(Path(os.environ["RAY_TMPDIR"]).glob("session_2*"))
    first = subprocess.Popen([sys.executable, "-m", "sibcl_ray.tune", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in first.stdout:  # wait for one finished trial ...
        seen.append(line)
        if re.search(r"Trial run_trial_\w+ completed after", line):
            break
    deadline = time.monotonic() + 180  # ... and a checkpoint of the next one
    while time.monotonic() < deadline and len([d for d in (out / "train").iterdir() if any(d.glob("checkpoint_*"))]) < 2:
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    rest, _ = first.communicate(timeout=180)
    text = "".join(seen) + rest
    assert re.search(r"Ray dashboard: http://127\.0\.0\.1:\d+", text)  # 8265 unless another Ray holds it
    assert first.returncode == 130, text[-3000:]
    assert "continue it with the same command and --resume" in text

    resumed = _tune(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("problem", "preset", "best_config", "val_error", "test_error", "nsam", "n_trials", "wall_s"):
        assert key in summary
    assert summary["problem"] == "phc" and summary["preset"] == "smoke" and summary["n_trials"] == 3
    assert math.isfinite(summary["val_error"]) and math.isfinite(summary["test_error"])
    # the predictor of the empty lattice scores ~0.08 on this metric; the smoke model must not be absurd
    assert 0 < summary["test_error"] < 0.3
    assert within(load_space(default_space_path("phc")), summary["best_config"])
    assert summary["labels_computed"] == 0  # the second run reused every shard

    with open(out / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    assert {t["outcome"] for t in trials} <= {"completed", "stopped_by_asha"}
    resumed_runs = [state["resumed_at"] for state in map(_readable_state, out.glob("train/*/checkpoint_*"))
                    if state and state["resumed_at"]]
    assert resumed_runs and all(r[0] >= 1 for r in resumed_runs)  # continued, not restarted
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["temperature"] == summary["best_config"]["temperature"]
    assert (out / "search_history.png").stat().st_size > 10_000

    # the stored study survived the SIGINT: Optuna's own client finds every trial once, in its true state
    study = optuna.load_study(study_name=summary["study"]["name"],
                              storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal"))))
    assert len(study.trials) == 3
    assert study.trials[0].params == reference_point(load_space(default_space_path("phc")))[0]  # warm start
    states = {t.state for t in study.trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED} and TrialState.COMPLETE in states
    assert study.best_value == pytest.approx(summary["val_error"])
    assert {t.params["temperature"] for t in study.trials} == {float(t["temperature"]) for t in trials}

    # the splits were read once per search by the driver: no Ray Data read task in any session of the run
    new_sessions = sorted(_ray_sessions() - sessions_before)
    assert len(new_sessions) >= 2  # the interrupted run and the resumed one
    logs = " ".join(p.read_text(errors="replace") for s in new_sessions for p in s.glob("logs/ray-data/*.log"))
    # the trials iterated the driver's blocks (InputDataBuffer); no session read a file with Ray Data
    assert "InputDataBuffer" in logs and "ReadParquet" not in logs and "ReadFiles" not in logs


@pytest.mark.slow
def test_smoke_search_with_two_ddp_workers_exports_a_usable_model_and_tracks_it(tmp_path: Path) -> None:
    """Two Train workers per trial (gloo): the global-batch NT-Xent and the split batches run for real;
    the selected model comes out as a folder a fresh process loads, and MLflow holds the trials."""
    out = tmp_path / "out"
    result = _tune("--problem", "phc", "--preset", "smoke", "--num-samples", "1", "--workers-per-trial", "2",
                   "--output", str(out), "--data-dir", str(tmp_path / "data"), "--tracker", "mlflow", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials_completed"] == 1 and 0 < summary["test_error"] < 0.3
    state = load_state(next(p for p in sorted(out.glob("train/*/checkpoint_*")) if _readable_state(p)))
    assert state["config"]["hparams"]["batch_size"] == 96  # the global batch; each rank took 48
    assert summary["seed"] == 0 and "--workers-per-trial 2" in summary["command"]
    assert summary["versions"]["ray"] == "2.60.0" and summary["versions"]["torch"]

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
