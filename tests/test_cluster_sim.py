"""The cluster path, for real, on one machine: cluster.yaml's cluster under Ray's fake provider.

`python -m sibcl_ray.cluster_sim up` starts a real head shaped like cluster.yaml's (no CPUs,
the `trial_driver` slots, token auth, dashboard on 127.0.0.1) whose real autoscaler adds
real worker raylets from zero. A smoke search submitted with `ray job submit` must make the
autoscaler add workers, run every label task and every trial on them (none on the head), and
finish every trial with complete data. Ray's own State API (served by the cluster's
dashboard, with the token) says where each task and actor ran.

The first tests check the derivation from cluster.yaml offline (no Ray started): the
simulation must follow cluster.yaml, so a node type or resource added there shows up here.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from waiting import wait_for

from sibcl_ray.cluster_sim import (
    GPU_STANDIN, SIM_HEAD_TYPE, SimCluster, SimSettings, client_env, cluster_processes,
    derive_config, load_cluster_yaml, read_state,
)
from sibcl_ray.presets import get_preset
from sibcl_ray.train.checkpoints import readable_state

#: This repository's cluster.yaml: the simulation is derived from it.
CLUSTER_YAML = Path(__file__).parents[1] / "cluster.yaml"

NUM_TRIALS = 2
IDLE_TIMEOUT_MINUTES = 0.5

# Ray's State API as a client of the cluster sees it (a subprocess: it needs the cluster's
# token, and this test process must not join the cluster).
STATE_QUERY = """\
import json, sys
from ray.util.state import list_actors, list_nodes, list_tasks
address = sys.argv[1]
dump = lambda rows: [r if isinstance(r, dict) else r.__dict__ for r in rows]
print(json.dumps({
    "nodes": dump(list_nodes(address=address, limit=1000, detail=True)),
    "tasks": dump(list_tasks(address=address, limit=10000, detail=True)),
    "actors": dump(list_actors(address=address, limit=10000, detail=True)),
}, default=str))
"""


# --- the derivation, offline ---------------------------------------------------------------


def test_every_node_type_of_cluster_yaml_is_simulated_with_its_resources() -> None:
    cluster = load_cluster_yaml(CLUSTER_YAML)
    settings = SimSettings(cpus_per_node=1, max_workers=2)
    sim = derive_config(cluster, settings, "127.0.0.1:1")
    types = cluster["available_node_types"]
    head = cluster["head_node_type"]
    assert set(sim["available_node_types"]) == (set(types) - {head}) | {SIM_HEAD_TYPE}
    # the head: cluster.yaml's resources unchanged (CPU 0 stays 0, trial_driver keeps its count)
    assert sim["available_node_types"][SIM_HEAD_TYPE]["resources"] == types[head]["resources"]
    assert sim["available_node_types"][SIM_HEAD_TYPE]["resources"]["CPU"] == 0
    for name, node_type in types.items():
        if name == head:
            continue
        simulated = sim["available_node_types"][name]
        real = node_type["resources"]
        expected = {("CPU" if k == "CPU" else GPU_STANDIN if k == "GPU" else k) for k in real}
        assert set(simulated["resources"]) - {"object_store_memory"} == expected
        assert simulated["resources"]["CPU"] == min(real["CPU"], 1)
        if "GPU" in real:
            assert simulated["resources"][GPU_STANDIN] == real["GPU"] and "GPU" not in simulated["resources"]
        assert simulated["max_workers"] == min(node_type["max_workers"], 2)
        assert simulated["min_workers"] == node_type.get("min_workers", 0) == 0
    assert sim["idle_timeout_minutes"] == cluster["idle_timeout_minutes"]
    assert sim["upscaling_speed"] == cluster["upscaling_speed"]
    assert sim["provider"]["type"] == "fake_multinode" and sim["provider"]["gcs_address"] == "127.0.0.1:1"


def test_a_node_type_added_to_cluster_yaml_is_simulated_too() -> None:
    cluster = load_cluster_yaml(CLUSTER_YAML)
    cluster["available_node_types"]["big_gpu"] = {"min_workers": 1, "max_workers": 4,
                                                  "resources": {"CPU": 32, "GPU": 4, "nvlink": 1}, "node_config": {}}
    sim = derive_config(cluster, SimSettings(max_workers=3, idle_timeout_minutes=0.5), "127.0.0.1:1")
    assert sim["available_node_types"]["big_gpu"]["resources"] == {
        "CPU": 1, GPU_STANDIN: 4, "nvlink": 1, "object_store_memory": 256 * 1024 * 1024}
    assert sim["available_node_types"]["big_gpu"]["min_workers"] == 1
    assert sim["available_node_types"]["big_gpu"]["max_workers"] == 3
    assert sim["idle_timeout_minutes"] == 0.5


def test_the_simulated_config_passes_rays_own_validation() -> None:
    from ray.autoscaler._private.util import validate_config  # private: Ray pinned (test_cluster_yaml.py)

    validate_config(derive_config(load_cluster_yaml(CLUSTER_YAML), SimSettings(), "127.0.0.1:1"))


def _edit_head_start(cluster: dict, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the head's `ray start --head` command (other commands stay)."""
    cluster["head_start_ray_commands"] = [command.replace(old, new) if "ray start --head" in command else command
                                          for command in cluster["head_start_ray_commands"]]


@pytest.mark.parametrize("edit, message", [
    (lambda c: _edit_head_start(c, "export RAY_AUTH_MODE=token;", ""),
     "not token; the simulation runs only with token auth on"),
    (lambda c: _edit_head_start(c, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
     "dashboard host is '0.0.0.0'"),
    (lambda c: c["available_node_types"]["cpu_worker"].pop("resources"), "node type 'cpu_worker' has no resources"),
])
def test_up_refuses_a_cluster_yaml_it_cannot_simulate_safely(tmp_path: Path, edit: Any, message: str) -> None:
    cluster = yaml.safe_load(CLUSTER_YAML.read_text())
    edit(cluster)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    done = subprocess.run([sys.executable, "-m", "sibcl_ray.cluster_sim", "up", "--cluster-yaml", str(path),
                           "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HOME=str(tmp_path)))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "state" / "state.json").exists()  # refused before anything started


# --- the cluster, for real ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, dict[str, str], Path]]:
    """The simulated cluster, up for this module: free ports, HOME (so the token) in a tmp dir."""
    home = tmp_path_factory.mktemp("sim-home")
    env = dict(os.environ, HOME=str(home))
    env.pop("RAY_ADDRESS", None)
    state_dir = home / "sim-state"
    command = [sys.executable, "-m", "sibcl_ray.cluster_sim"]
    # idle workers leave after 30 s instead of cluster.yaml's 10 min, so scaling back to 0 is seen
    started = subprocess.run([*command, "up", "--cluster-yaml", str(CLUSTER_YAML), "--state-dir", str(state_dir),
                              "--idle-timeout-minutes", str(IDLE_TIMEOUT_MINUTES)], env=env, capture_output=True,
                             text=True, timeout=300)
    sim = read_state(state_dir)
    try:
        assert started.returncode == 0 and sim is not None, started.stdout[-3000:] + started.stderr[-3000:]
        yield sim, dict(env, **client_env(sim)), home
    finally:
        stopped = subprocess.run([*command, "down", "--state-dir", str(state_dir)], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert stopped.returncode == 0, stopped.stderr
        if sim is not None:
            assert cluster_processes(sim.sim_id) == []  # every process of the simulation is gone
            shutil.rmtree(sim.temp_dir, ignore_errors=True)  # its Ray logs (`down` keeps them for people)


def _cpus(row: dict[str, Any]) -> float:
    """CPUs a task or actor of the State API held: ``CPU``, or ``CPU_group_<pg>`` inside a placement group."""
    resources = row.get("required_resources") or {}
    return resources.get("CPU", 0) + sum(v for k, v in resources.items() if k.startswith("CPU_group_") and
                                         k.count("_") == 2)


def _alive_at(nodes: dict[str, dict[str, Any]], ids: list[str], time_ms: float) -> list[str]:
    """The nodes among ``ids`` alive at ``time_ms`` from the State API's start and end times. An
    ALIVE node has no end time; a DEAD one sometimes has none recorded either (end_time_ms 0),
    and is then counted at its start only: a lower bound, never a false alarm."""
    def end(node: dict[str, Any]) -> float:
        if node.get("end_time_ms"):
            return node["end_time_ms"]
        return float("inf") if node["state"] == "ALIVE" else node["start_time_ms"] + 1
    return [i for i in ids if nodes[i]["start_time_ms"] <= time_ms < end(nodes[i])]


def _most_alive_at_once(nodes: dict[str, dict[str, Any]], ids: list[str]) -> int:
    return max((len(_alive_at(nodes, ids, nodes[i]["start_time_ms"])) for i in ids), default=0)


def _cluster_state(sim: SimCluster, env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    done = subprocess.run([sys.executable, "-c", STATE_QUERY, sim.dashboard_url], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_modules_submit_line_is_the_readmes() -> None:
    """``cluster_sim``'s docstring and the README show one job, the one the test below runs."""
    import re

    import sibcl_ray.cluster_sim

    def submit(text: str) -> str:
        joined = re.sub(r"\\\s*\n\s*", " ", text)
        return " ".join(next(line for line in joined.splitlines() if "ray job submit" in line).split())

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme[readme.index("python -m sibcl_ray.cluster_sim up          #"):]
    assert submit(sibcl_ray.cluster_sim.__doc__ or "") == submit(block)


@pytest.mark.slow
def test_a_job_on_the_simulated_cluster_runs_its_work_on_autoscaled_workers(
        sim_cluster: tuple[SimCluster, dict[str, str], Path]) -> None:
    sim, env, home = sim_cluster
    cluster = load_cluster_yaml(CLUSTER_YAML)

    # token auth is on: the Jobs API refuses a caller without the token
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{sim.dashboard_url}/api/jobs/", timeout=30)
    assert refused.value.code == 401

    # one simulation per state dir: a second `up` is refused before it starts anything
    again = subprocess.run([sys.executable, "-m", "sibcl_ray.cluster_sim", "up", "--cluster-yaml", str(CLUSTER_YAML), "--state-dir",
                            str(Path(sim.config_file).parent)], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "a simulated cluster is already up" in again.stderr, again.stderr
    assert read_state(Path(sim.config_file).parent) == sim

    before = _cluster_state(sim, env)
    assert [n["is_head_node"] for n in before["nodes"] if n["state"] == "ALIVE"] == [True]  # workers from 0
    head = before["nodes"][0]
    assert head["node_ip"] == "127.0.0.1"
    head_resources = cluster["available_node_types"][cluster["head_node_type"]]["resources"]
    assert head["resources_total"].get("CPU", 0) == head_resources["CPU"] == 0
    assert head["resources_total"]["trial_driver"] == head_resources["trial_driver"]

    out, data = home / "runs" / "sim-smoke", home / "runs" / "sim-data"
    tune_args = (f"--problem phc --preset smoke --num-samples {NUM_TRIALS} --max-concurrent {NUM_TRIALS} "
                 f"--address auto --output {out} --data-dir {data}")
    start = time.monotonic()
    job = subprocess.run(f"ray job submit --address {sim.dashboard_url} --submission-id sim-smoke -- "
                         f"python -m sibcl_ray.tune {tune_args}", shell=True, env=env, capture_output=True, text=True,
                         timeout=600, cwd=home)
    job_s = time.monotonic() - start
    assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-4000:] + job.stderr[-2000:]
    # a head with no CPUs: the job says the trials wait for workers (and a local --data-dir is
    # accepted: every node of the fake provider is on this machine, session.is_multi_node)
    assert "trials wait for the autoscaler to add nodes" in job.stdout, job.stdout[-4000:]
    print(f"job: {job_s:.0f} s")

    state = _cluster_state(sim, env)
    nodes = {n["node_id"]: n for n in state["nodes"]}
    head_id = next(i for i, n in nodes.items() if n["is_head_node"])
    workers = {i: n for i, n in nodes.items() if not n["is_head_node"]}
    # the autoscaler added them: the fake provider's node ids, cluster.yaml's worker types
    assert workers and all(i.startswith("fffffffff") for i in workers), sorted(nodes)
    # cluster.yaml's worker types, scaled down: the CPU type, and the GPU type's 1-CPU stand-in
    limits = derive_config(cluster, SimSettings(), sim.gcs_address)["available_node_types"]
    cpu_nodes = [i for i, n in workers.items() if GPU_STANDIN not in n["resources_total"]]
    standins = [i for i, n in workers.items() if GPU_STANDIN in n["resources_total"]]
    assert all(n["resources_total"]["CPU"] == 1 for n in workers.values())
    # CPU-only demand goes to the CPU type; the stand-in is used only when the CPU type filled up.
    # Idle workers leave after 30 s and come back on demand, so nodes are counted alive at once.
    # (Not asserted: max_workers as an upper bound. With that churn Ray's fake provider was seen
    # with 4 stand-ins alive at once for a max_workers of 2; the derived limits are checked above.)
    assert _most_alive_at_once(workers, cpu_nodes) >= 1, workers
    assert not standins or _most_alive_at_once(workers, cpu_nodes) >= limits["cpu_worker"]["max_workers"]

    # every label task ran to the end on a worker node; so did the test evaluation. A task whose node
    # the autoscaler took away is retried by Ray (a second attempt, same task id): count the last attempts
    last_attempts = {}
    for t in sorted(state["tasks"], key=lambda t: t["attempt_number"]):
        last_attempts[t["task_id"]] = t
    state = {**state, "tasks": list(last_attempts.values())}
    shard_tasks = [t for t in state["tasks"] if t["name"].endswith("_make_shard")]
    preset = get_preset("smoke", problem="phc")
    n_shards = sum(-(-count // preset.shard_size) for count in preset.split_counts().values())
    assert len(shard_tasks) == n_shards and {t["state"] for t in shard_tasks} == {"FINISHED"}, shard_tasks
    assert {t["node_id"] for t in shard_tasks} <= set(workers)
    evaluations = [t for t in state["tasks"] if t["name"].endswith("evaluate") and t["state"] == "FINISHED"]
    assert len(evaluations) == 1 and evaluations[0]["node_id"] in workers
    # nothing that holds a CPU ran on the head: no task, no actor (Tune trials, Train workers);
    # an actor in a placement group holds its CPUs as CPU_group_<id> resources
    cpu_tasks = [t for t in state["tasks"] if t["type"] == "NORMAL_TASK" and _cpus(t) > 0]
    assert len(cpu_tasks) == n_shards + 1 and all(t["node_id"] in workers for t in cpu_tasks), [
        (t["name"], t["node_id"]) for t in cpu_tasks if t["node_id"] not in workers]
    cpu_actors = [a for a in state["actors"] if _cpus(a) > 0]
    trials = [a for a in cpu_actors if a["class_name"] == "ImplicitFunc"]  # Tune's function-trainable actor
    assert len(trials) == NUM_TRIALS, [(a["class_name"], _cpus(a)) for a in state["actors"]]
    assert all(a["node_id"] in workers for a in cpu_actors), [(a["class_name"], a["node_id"]) for a in cpu_actors]
    assert all(a["node_id"] == head_id for a in state["actors"] if a["class_name"] == "JobSupervisor")
    print("nodes:", {i[-5:]: n["resources_total"].get("CPU", 0) for i, n in nodes.items()},
          "label tasks:", sorted(t["node_id"][-5:] for t in shard_tasks),
          "trials:", sorted(a["node_id"][-5:] for a in trials))

    # every trial finished and the search wrote its results
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == NUM_TRIALS and summary["n_trials_error"] == 0
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == NUM_TRIALS and {r["status"] for r in rows} == {"TERMINATED"}
    assert {r["outcome"] for r in rows} <= {"completed", "stopped_by_asha"}
    assert 0 < summary["test_error"] < 0.3 and (out / "model" / "model.pt").exists()
    # the data is complete: every split's manifest lists all its rows, each computed once
    assert summary["labels_computed"] == sum(preset.split_counts().values())
    dataset = Path(summary["data"])
    for split, count in preset.split_counts().items():
        manifest = json.loads((dataset / split / "manifest.json").read_text())
        assert sum(entry["rows"] for entry in manifest["shards"].values()) == count, split

    status = subprocess.run([sys.executable, "-m", "sibcl_ray.cluster_sim", "status", "--state-dir",
                             str(Path(sim.config_file).parent)], env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "cpu_worker" in status.stdout, status.stdout + status.stderr


def _node_processes(sim: SimCluster, node_id: str) -> dict[int, str]:
    """pid → name of every process of worker node ``node_id`` (raylet, its workers, agents): the
    fake provider starts each node with its id in ``RAY_OVERRIDE_NODE_ID_FOR_TESTING``, and every
    process the raylet spawns inherits it."""
    wanted = f"RAY_OVERRIDE_NODE_ID_FOR_TESTING={node_id}".encode()
    found = {}
    for pid in cluster_processes(sim.sim_id):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            found[pid] = name
    assert "raylet" in found.values(), f"no raylet process of node {node_id}: {found}"
    return found


def _trial_states(out: Path) -> list[dict[str, Any]]:
    """Every readable checkpoint of the search's one-worker trials (they train inside Tune)."""
    return [s for s in map(readable_state, sorted(out.glob("tune/*/*/checkpoint_*"))) if s]


@pytest.mark.slow
def test_a_killed_worker_node_and_a_stopped_job_lose_no_work_and_workers_scale_back_to_zero(
        sim_cluster: tuple[SimCluster, dict[str, str], Path]) -> None:
    """Issue 17's faults, on the cluster: the node running a trial dies mid-pretraining (its raylet
    and every process on it killed), and the trial continues on another node from its last checkpoint; the job is
    then stopped (``ray job stop``) and the same command with ``--resume`` finishes it; after it,
    the autoscaler removes every worker (idle timeout 30 s here)."""
    sim, env, home = sim_cluster
    out, data = home / "runs" / "sim-faults", home / "runs" / "sim-data"  # the smoke labels of the test above
    preset = home / "longer.yaml"  # smoke's data (reused), more epochs: room for a kill and a stop
    preset.write_text("base: smoke\nname: longer\npretrain_epochs: 30\nfinetune_epochs: 8\n")
    tune = (f"python -m sibcl_ray.tune --problem phc --preset {preset} --num-samples 1 --address auto "
            f"--output {out} --data-dir {data}")
    url = sim.dashboard_url

    def logs(job: str = "sim-faults") -> str:
        return subprocess.run(f"ray job logs --address {url} {job}", shell=True, env=env, capture_output=True,
                              text=True, timeout=120, cwd=home).stdout[-4000:]

    earlier = {a["actor_id"] for a in _cluster_state(sim, env)["actors"]}  # the test above's trials
    # as the README submits: Ray kills a stopped job RAY_JOB_STOP_WAIT_TIME_S after the signal (default 3 s,
    # too short on a loaded machine for Tune to save and the driver to print its --resume line)
    grace = """--runtime-env-json '{"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "120"}}'"""
    submitted = subprocess.run(f"ray job submit --no-wait --address {url} --submission-id sim-faults {grace} -- {tune}",
                               shell=True, env=env, capture_output=True, text=True, timeout=300, cwd=home)
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-2000:]

    # 1. a worker node dies mid-trial: kill the raylet of the node the trial runs on
    wait_for(lambda: any(s["epochs_done"] >= 2 for s in _trial_states(out)), 300, "the trial's second checkpoint", logs)
    trial_actor = wait_for(lambda: next(
        (a for a in _cluster_state(sim, env)["actors"] if a["class_name"] == "ImplicitFunc" and a["state"] == "ALIVE"
         and a["actor_id"] not in earlier), None), 60, "the trial's actor", logs)
    killed_node = trial_actor["node_id"]
    # the machine goes away: every process of the node at once (a raylet killed alone leaves its
    # workers training on for ~20 s, docs/ray.md)
    victims = _node_processes(sim, killed_node)
    assert trial_actor["pid"] in victims, (trial_actor["pid"], victims)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed_at = max(s["epochs_done"] for s in _trial_states(out))
    resumed = wait_for(lambda: next(
        (s for s in _trial_states(out) if s["resumed_at"] and s["epochs_done"] > s["resumed_at"][0]), None), 300,
        "the trial to continue elsewhere", logs)
    assert 1 <= resumed["resumed_at"][0] <= killed_at  # from its last checkpoint, not from scratch

    # 2. the job is stopped, and the same command with --resume finishes it
    stopped = subprocess.run(f"ray job stop --address {url} sim-faults", shell=True, env=env, capture_output=True,
                             text=True, timeout=300, cwd=home)
    assert stopped.returncode == 0, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    assert "continue it with the same command and --resume" in logs(), logs()
    finished = subprocess.run(f"ray job submit --address {url} --submission-id sim-faults-resume {grace} -- {tune} --resume",
                              shell=True, env=env, capture_output=True, text=True, timeout=600, cwd=home)
    assert finished.returncode == 0 and "succeeded" in finished.stdout, finished.stdout[-4000:] + finished.stderr[-2000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == 1 and summary["n_trials_error"] == 0 and summary["labels_computed"] == 0
    final = max(_trial_states(out), key=lambda s: s["epochs_done"])
    assert final["epochs_done"] == 38 and len(final["resumed_at"]) == 2, (final["resumed_at"], logs("sim-faults-resume"))
    assert final["resumed_at"][0] <= killed_at < final["resumed_at"][1]
    state = _cluster_state(sim, env)
    nodes = {n["node_id"]: n for n in state["nodes"]}
    assert nodes[killed_node]["state"] == "DEAD"
    trial_nodes = [a["node_id"] for a in state["actors"] if a["class_name"] == "ImplicitFunc" and a["actor_id"] not in earlier]
    assert killed_node in trial_nodes and set(trial_nodes) - {killed_node}, trial_nodes  # continued on another node
    # an actor Ray never placed (a trial the stop caught before it started) ran nowhere: node None
    assert all(not nodes[n]["is_head_node"] for n in trial_nodes if n is not None)
    print("trial ran on", [n[-5:] for n in trial_nodes], "killed", killed_node[-5:], "resumed at", final["resumed_at"])

    # 3. idle workers are removed: back to the head alone
    start = time.monotonic()
    wait_for(lambda: [n["is_head_node"] for n in _cluster_state(sim, env)["nodes"] if n["state"] == "ALIVE"] == [True],
             IDLE_TIMEOUT_MINUTES * 60 + 180, "the workers to scale back to 0")
    print(f"scaled back to the head alone {time.monotonic() - start:.0f} s after the search")
