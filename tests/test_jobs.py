"""The README's job commands, run as written against a real `ray start` cluster with token auth.

`ray job submit` a smoke search, `ray job stop` it mid-trial (SIGTERM: it must take the Ctrl-C
path, not die in a stack dump), resubmit with `--resume`, and find every trial exactly once,
the interrupted one continued from its checkpoint, no label recomputed, the stored study
intact. Only the ports differ from the README (free ones, so another Ray cannot collide).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sibcl_ray.cluster_sim import MARKER_ENV, free_port, stop_marked
from sibcl_ray.search.space import default_space_path, load_space, reference_point, within
from sibcl_ray.train.checkpoints import readable_state

README = Path(__file__).parents[1] / "README.md"
#: Epochs of a smoke trial (2 pretraining + 4 fine-tuning): each takes ~2 s, so the stop must be quick.
SMOKE_EPOCHS = 6


def readme_job_commands() -> list[str]:
    """The shell commands of the README's "Try the job commands locally" block, one per line."""
    text = README.read_text()
    section = text[text.index("### Try the job commands locally"):]
    block = section[section.index("```bash") + len("```bash"):]
    block = block[: block.index("```")]
    return [" ".join(part.strip() for part in command.split("\\\n")) for command in
            re.split(r"(?<!\\)\n", block.strip()) if command.strip()]


def _run(command: str, env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          executable="/bin/bash")


@pytest.mark.slow
def test_readme_job_commands_stop_cleanly_and_resume(tmp_path: Path) -> None:
    commands = readme_job_commands()
    assert [c.split()[:3] for c in commands] == [
        ["ray", "get-auth-token", "--generate"], ["export", "RAY_AUTH_MODE=token"], ["ray", "start", "--head"],
        ["ray", "job", "submit"], ["ray", "job", "stop"], ["ray", "job", "submit"], ["ray", "stop"]]
    gcs, dashboard, agent = free_port(), free_port(), free_port()
    address = f"http://127.0.0.1:{dashboard}"
    commands = [c.replace("http://127.0.0.1:8265", address) for c in commands]
    # free ports (the job agent's too: its default 52365 is taken by any other local Ray, which leaves the
    # head without a job agent), and a temp dir of its own: `ray start` leaves its address there
    # (ray_current_cluster); short, as Ray's socket paths must stay under 108 bytes
    ray_temp = Path(tempfile.mkdtemp(prefix="sibcl-", dir="/tmp"))
    commands[2] = commands[2].replace(
        "ray start --head", f"ray start --head --port {gcs} --dashboard-port {dashboard} "
                            f"--dashboard-agent-listen-port {agent} --temp-dir {ray_temp}")
    marker = uuid.uuid4().hex  # every process of this test's cluster carries it: only those are stopped
    env = dict(os.environ, HOME=str(tmp_path), PWD=str(tmp_path), RAY_AUTH_MODE="token", **{MARKER_ENV: marker})
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "sibcl_runs" / "job-smoke"
    try:
        token = _run(commands[0], env, tmp_path)
        assert token.returncode == 0 and (tmp_path / ".ray" / "auth_token").exists(), token.stderr
        assert oct((tmp_path / ".ray" / "auth_token").stat().st_mode & 0o777) == "0o600"
        started = _run(commands[2], env, tmp_path, timeout=180)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]

        # token auth is on: a client without RAY_AUTH_MODE=token is refused
        refused = _run(f"ray job list --address {address}", {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"},
                       tmp_path, timeout=120)
        assert refused.returncode != 0 and "token" in (refused.stdout + refused.stderr).lower()

        agent_deadline = time.monotonic() + 240  # right after `ray start` the head's job agent may not have
        while True:                               # registered yet (over a minute on a loaded 2-core machine)
            submitted = _run(commands[3], env, tmp_path, timeout=180)
            if "No available agent to submit job" not in submitted.stderr or time.monotonic() > agent_deadline:
                break
            time.sleep(2)
        assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-2000:]
        job = re.search(r"--submission-id (\S+)", commands[3]).group(1)
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:  # one trial trained to the end, and the next one past an epoch
            # one-worker trials train inside their Tune trial: checkpoints in tune/<search>/<trial>/
            epochs = [max((s["epochs_done"] for s in map(readable_state, d.glob("checkpoint_*")) if s), default=0)
                      for d in out.glob("tune/*/*") if d.is_dir()]
            # a checkpoint on disk is not yet one Tune knows: wait for the driver's progress line of the
            # second trial (printed once Tune has taken that epoch's result and checkpoint in), read from
            # the job's log file: a `ray job logs` call takes seconds on a loaded machine, long enough
            # for the rest of the smoke search to finish before the stop arrives
            driver_log = ray_temp / "session_latest" / "logs" / f"job-driver-{job}.log"
            seen = set(re.findall(r"trial (\S+): pretraining epoch \d+", driver_log.read_text(errors="replace"))
                       ) if epochs and driver_log.exists() else set()
            if len(seen) >= 2 and max(epochs) == SMOKE_EPOCHS and 0 < min(epochs) < SMOKE_EPOCHS:
                break
            time.sleep(0.3)
        else:
            pytest.fail("no trial finished in time:\n" + _run(f"ray job logs --address {address} {job}", env,
                                                               tmp_path).stdout[-3000:])
        stopped = _run(commands[4], env, tmp_path, timeout=300)
        assert stopped.returncode == 0, stopped.stdout[-2000:] + stopped.stderr[-2000:]
        status = _run(f"ray job status --address {address} {job}", env, tmp_path).stdout
        logs = _run(f"ray job logs --address {address} {job}", env, tmp_path).stdout
        assert "STOPPED" in status or "stopped" in status
        assert "stop signal (SIGTERM) received: stopping as on Ctrl-C" in logs
        assert "continue it with the same command and --resume" in logs, logs[-3000:]
        assert "Traceback" not in logs and "SystemExit" not in logs, logs[-3000:]

        resumed = _run(commands[5], env, tmp_path, timeout=600)  # without --no-wait: follows the job to its end
        assert resumed.returncode == 0 and "succeeded" in resumed.stdout, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    finally:  # the block's last command, `ray stop`, would stop every Ray on the machine
        stop_marked(marker)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem"] == "phc" and summary["preset"] == "smoke" and summary["n_trials"] == 3
    assert math.isfinite(summary["val_error"]) and 0 < summary["test_error"] < 0.3
    assert within(load_space(default_space_path("phc")), summary["best_config"])
    assert summary["labels_computed"] == 0  # the resumed job reused every shard
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["temperature"] == summary["best_config"]["temperature"]
    assert (out / "search_history.png").stat().st_size > 10_000 and (out / "model" / "model.pt").exists()
    with open(out / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    assert {t["outcome"] for t in trials} <= {"completed", "stopped_by_asha"}
    # a finished search keeps only the selected model's checkpoint: the resumed trials say so in the job's log
    resumed_runs = [int(e) for e in re.findall(r"resumed from its checkpoint after epoch \[?(\d+)", resumed.stdout)]
    assert resumed_runs and all(r >= 1 for r in resumed_runs), (  # continued, not restarted
        f"epochs at the stop: {epochs}\nfirst job:\n{logs[-2500:]}\nresumed job:\n{resumed.stdout[-2500:]}")

    # the stored study survived the stop: Optuna's own client finds every trial once, in its true state
    study = optuna.load_study(study_name=summary["study"]["name"],
                              storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal"))))
    assert len(study.trials) == 3
    assert study.trials[0].params == reference_point(load_space(default_space_path("phc")))[0]  # warm start
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    # the summary's trial is the study's best, or the reference when the best won by less than the seed noise
    chosen = [t for t in study.trials if t.params == {k: summary["best_config"][k] for k in t.params}]
    assert len(chosen) == 1 and chosen[0].value == pytest.approx(summary["val_error"])
    assert study.best_value <= summary["val_error"]
    assert study.best_value == pytest.approx(summary["val_error"]) or summary["best_is_reference"]
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3  # the reference ran once, not per resume

    # the splits were read once per search by each driver and handed to the one-worker trials as
    # arrays: no Ray Data read task (nor any Ray Data execution) on the cluster
    sessions = sorted(ray_temp.glob("session_2*"))
    assert len(sessions) == 1  # the `ray start` cluster, shared by both jobs
    logs = " ".join(p.read_text(errors="replace") for p in sessions[0].glob("logs/ray-data/*.log"))
    assert "ReadParquet" not in logs and "ReadFiles" not in logs and "InputDataBuffer" not in logs
    shutil.rmtree(ray_temp, ignore_errors=True)
    assert shlex.split(summary["command"])[-1] == "--resume"

