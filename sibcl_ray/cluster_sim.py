"""``python -m sibcl_ray.cluster_sim``: cluster.yaml's autoscaling cluster, for real, on one machine.

    python -m sibcl_ray.cluster_sim up                 # head now, workers on demand (prints the addresses)
    export RAY_AUTH_MODE=token                         # clients send ~/.ray/auth_token, and
    export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0         # keep 127.0.0.1 as it is (see client_env)
    ray job submit --address http://127.0.0.1:<dashboard port> -- \\
        python -m sibcl_ray.tune --problem phc --preset smoke --num-samples 2 --max-concurrent 2 --address auto \\
        --output $PWD/sibcl_runs/sim --data-dir $PWD/sibcl_runs/sim-data
    python -m sibcl_ray.cluster_sim status             # Ray's own `ray status` of the simulated cluster
    python -m sibcl_ray.cluster_sim down               # stops every process the simulated cluster started

    options of up: [--cluster-yaml cluster.yaml] [--cpus-per-node 1] [--max-workers 2]
                   [--idle-timeout-minutes M] [--object-store-mib 256] [--state-dir DIR]

Why: ``ray up cluster.yaml`` needs an AWS account, so the path a cluster job takes (the job
driver and every trial driver on a head with no CPUs, label tasks and trials on autoscaled
workers, nodes added from zero) would otherwise only ever run on AWS. Ray ships a fake node
provider (``fake_multinode``, ``ray/autoscaler/_private/fake_multi_node/node_provider.py``):
a real head started with ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=…`` whose
real autoscaler launches real worker raylets as processes on the same machine.

What is taken from cluster.yaml, read each time ``up`` runs (so the two cannot drift apart):
every node type with its resources, ``min_workers``, ``max_workers``, ``upscaling_speed``,
``idle_timeout_minutes``, the head's ``RAY_AUTH_MODE`` and ``--dashboard-host`` (from
``head_start_ray_commands``) and where the token comes from (``file_mounts``). Only numbers
are scaled down to fit a laptop: CPUs per node to ``--cpus-per-node``, ``max_workers`` per
type to ``--max-workers``, the object store to ``--object-store-mib``; a CPU count of 0 (the
head's) stays 0, custom resources (``trial_driver``) keep their counts.

GPUs: there is no CUDA here, so a node type's ``GPU`` becomes the custom resource
:data:`GPU_STANDIN` with the same count. The GPU worker type is then a 1-CPU node the
autoscaler still knows by its name, limits and resources; it prefers the CPU type for CPU-only
demand (Ray's utilization score, like ``AUTOSCALER_CONSERVE_GPU_NODES`` on AWS) and launches it
once that type is at its ``max_workers``. Jobs asking for GPUs (``--gpus-per-worker 1``) find
no ``GPU`` resource and cannot be simulated; declaring a fake ``GPU`` instead would schedule
them and then fail in ``torch.cuda``.

Safety on a shared machine: token auth is on (``RAY_AUTH_MODE=token``, the token file made
with mode 0600 when missing, as ``ray get-auth-token --generate`` would), the dashboard is on
127.0.0.1, and every Ray server of the simulation binds loopback (node IP 127.0.0.1, the
setting ``session.keep_local_ray_on_loopback`` uses; the fake nodes need no network). Every
port is a free one, and the Ray temp folder is the simulation's own, so another Ray on this
machine (a test's, a local run's) is not disturbed: ``ray stop`` would kill every Ray on the
machine, so ``down`` stops only the processes whose environment carries this simulation's
marker (:data:`MARKER_ENV`), which every process of the cluster inherits from its head.

Storage: every node shares this machine's disk, so local ``--output``/``--data-dir`` paths
are right here, and ``session.is_multi_node`` knows it: it treats a cluster whose autoscaler
can add nodes as multi-host (a cloud cluster starts with only its head), except under the
fake provider, whose nodes are processes on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from sibcl_ray.cli import run_main
from sibcl_ray.errors import SibclError
from sibcl_ray.session import default_token_file, ensure_token_file, free_port

#: The default of ``--cluster-yaml``: the repository's, run from its root (an installed package
#: carries no cluster.yaml).
DEFAULT_CLUSTER_YAML = Path("cluster.yaml")
DEFAULT_STATE_DIR = Path("~/.cache/sibcl_ray/cluster_sim")
STATE_FILE = "state.json"
CONFIG_FILE = "autoscaling_config.yaml"
#: The fake provider tags the head with this node type (``FAKE_HEAD_NODE_TYPE``), whatever
#: cluster.yaml calls it; the head's resources are cluster.yaml's head's.
SIM_HEAD_TYPE = "ray.head.default"
#: Custom resource standing in for a node type's GPUs (same count), as there is no CUDA here.
GPU_STANDIN = "sim_gpu"
#: Environment variable set to the simulation's id in every process the cluster starts:
#: ``down`` stops exactly those.
MARKER_ENV = "SIBCL_CLUSTER_SIM"
MIB = 1024 * 1024


@dataclass(frozen=True)
class SimSettings:
    """The numbers the simulation scales down (everything else comes from cluster.yaml)."""

    cpus_per_node: int = 1
    max_workers: int = 2
    idle_timeout_minutes: float | None = None
    object_store_mib: int = 256


@dataclass(frozen=True)
class SimCluster:
    """A running simulation, as recorded in ``<state dir>/state.json``."""

    sim_id: str
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    token_file: str
    config_file: str
    cluster_yaml: str
    head_log: str


# ---------------------------------------------------------------------------------------------
# cluster.yaml → the fake provider's autoscaling config


def load_cluster_yaml(path: Path) -> dict[str, Any]:
    """cluster.yaml as a dict, with the keys the simulation reads checked to exist."""
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SibclError(f"--cluster-yaml {path}: no such file") from None
    except yaml.YAMLError as err:
        raise SibclError(f"--cluster-yaml {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or not isinstance(config.get("available_node_types"), dict):
        raise SibclError(f"--cluster-yaml {path}: no available_node_types mapping; is it a Ray cluster-launcher file?")
    head = config.get("head_node_type")
    if head not in config["available_node_types"]:
        raise SibclError(f"--cluster-yaml {path}: head_node_type {head!r} is not one of available_node_types")
    for name, node_type in config["available_node_types"].items():
        if not isinstance(node_type, dict) or not isinstance(node_type.get("resources"), dict):
            raise SibclError(f"--cluster-yaml {path}: node type {name!r} has no resources mapping; the simulation "
                             "needs every node type's resources spelled out")
    return config


def scale_resources(resources: dict[str, float], settings: SimSettings) -> dict[str, float]:
    """A node type's resources, made to fit this machine: CPUs capped (0 stays 0), GPUs as the
    stand-in resource, custom resources unchanged."""
    scaled: dict[str, float] = {}
    for key, value in resources.items():
        if key == "CPU":
            scaled["CPU"] = min(value, settings.cpus_per_node)
        elif key == "GPU":
            if value:
                scaled[GPU_STANDIN] = value
        else:
            scaled[key] = value
    return scaled


def head_start_settings(cluster: dict[str, Any]) -> dict[str, str]:
    """``RAY_AUTH_MODE`` and ``--dashboard-host`` of cluster.yaml's ``ray start --head`` line.

    The simulation runs with the cluster's own choices, and refuses to run without token auth
    or with a dashboard on a non-loopback address: on a shared machine either would let any
    local user (or, for the address, any host) submit jobs that run arbitrary code.
    """
    for command in cluster.get("head_start_ray_commands") or []:
        if "ray start" in command and "--head" in command:
            break
    else:
        raise SibclError("cluster.yaml: no `ray start --head` command in head_start_ray_commands")
    words = shlex.split(command.replace(";", " ; "))
    auth = next((w.split("=", 1)[1] for w in words if w.startswith("RAY_AUTH_MODE=")), None)
    host = None
    for i, word in enumerate(words):
        if word.startswith("--dashboard-host="):
            host = word.split("=", 1)[1]
        elif word == "--dashboard-host" and i + 1 < len(words):
            host = words[i + 1]
    if auth != "token":
        raise SibclError(f"cluster.yaml: the head starts Ray with RAY_AUTH_MODE={auth}, not token; the simulation "
                         "runs only with token auth on")
    if host not in ("127.0.0.1", "localhost"):
        raise SibclError(f"cluster.yaml: the head's dashboard host is {host!r}; the simulation runs only with "
                         "--dashboard-host=127.0.0.1")
    return {"RAY_AUTH_MODE": auth, "dashboard_host": "127.0.0.1"}


def token_source(cluster: dict[str, Any]) -> Path:
    """The local token file cluster.yaml copies to every node (``file_mounts``), ~/.ray/auth_token if none."""
    for target, source in (cluster.get("file_mounts") or {}).items():
        if str(target).endswith("/.ray/auth_token"):
            return Path(str(source)).expanduser()
    return default_token_file()


def derive_config(cluster: dict[str, Any], settings: SimSettings, gcs_address: str) -> dict[str, Any]:
    """The fake provider's autoscaling config for cluster.yaml, numbers scaled by ``settings``.

    ``gcs_address`` is where the fake worker nodes join (the head's free port, not 6379).
    The keys cloud launches need (docker, setup and start commands, file mounts) are empty:
    the fake provider starts raylets in the autoscaler's own process and runs no commands.
    """
    head_name = cluster["head_node_type"]
    types: dict[str, Any] = {}
    for name, node_type in cluster["available_node_types"].items():
        if name == head_name:
            continue
        max_workers = min(int(node_type.get("max_workers", cluster.get("max_workers", 0))), settings.max_workers)
        types[name] = {
            "resources": {**scale_resources(node_type["resources"], settings),
                          "object_store_memory": settings.object_store_mib * MIB},
            "node_config": {},
            "min_workers": min(int(node_type.get("min_workers", 0)), max_workers),
            "max_workers": max_workers,
        }
    types[SIM_HEAD_TYPE] = {"resources": scale_resources(cluster["available_node_types"][head_name]["resources"],
                                                         settings),
                            "node_config": {}, "max_workers": 0}
    idle = settings.idle_timeout_minutes
    return {
        "cluster_name": f"{cluster.get('cluster_name', 'cluster')}-sim",
        "max_workers": min(int(cluster.get("max_workers", 0)), sum(t["max_workers"] for t in types.values())),
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle if idle is not None else cluster.get("idle_timeout_minutes", 5),
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     # launch as many nodes per autoscaler round as it asks for, not one by one
                     "launch_multiple": True},
        "available_node_types": types,
        "head_node_type": SIM_HEAD_TYPE,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


# ---------------------------------------------------------------------------------------------
# up / down / status


def read_state(state_dir: Path) -> SimCluster | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return SimCluster(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise SibclError(f"{path} is not a simulation state file ({err}); delete it and stop the cluster's processes "
                         f"by hand (they carry {MARKER_ENV} in their environment)") from None


def cluster_processes(sim_id: str) -> list[int]:
    """Pids of this user's processes whose environment carries the simulation's marker."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and int(entry.name) != os.getpid() and _is_alive(int(entry.name), sim_id)]


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)


def _wait_for_dashboard(url: str, deadline: float) -> None:
    """Until the dashboard answers HTTP at all (401 without the token counts: it is up)."""
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise SibclError(f"the simulated cluster's dashboard did not answer at {url} in time")


def up(cluster_yaml: Path, state_dir: Path, settings: SimSettings, timeout_s: float = 180) -> SimCluster:
    """Start the head of the simulated cluster; the autoscaler adds workers when work asks for them."""
    for flag, value, low in (("--cpus-per-node", settings.cpus_per_node, 1), ("--max-workers", settings.max_workers, 0),
                             ("--object-store-mib", settings.object_store_mib, 80)):
        if value < low:
            raise SibclError(f"{flag} {value} must be at least {low}")
    if settings.idle_timeout_minutes is not None and settings.idle_timeout_minutes < 0:
        raise SibclError(f"--idle-timeout-minutes {settings.idle_timeout_minutes} must be >= 0")
    cluster = load_cluster_yaml(cluster_yaml)
    head = head_start_settings(cluster)
    state_dir = state_dir.expanduser().absolute()
    existing = read_state(state_dir)
    if existing is not None and cluster_processes(existing.sim_id):
        raise SibclError(f"a simulated cluster is already up (dashboard {existing.dashboard_url}, state in "
                         f"{state_dir}): run `python -m sibcl_ray.cluster_sim down` first")
    state_dir.mkdir(parents=True, exist_ok=True)
    token = ensure_token_file(token_source(cluster))

    gcs_port, dashboard_port = free_port(), free_port()
    gcs_address = f"127.0.0.1:{gcs_port}"
    config = derive_config(cluster, settings, gcs_address)
    config_file = state_dir / CONFIG_FILE
    config_file.write_text(f"# made from {cluster_yaml} by python -m sibcl_ray.cluster_sim up; remade on each up\n"
                           + yaml.safe_dump(config, sort_keys=False))
    # short: Ray's socket paths live under it (AF_UNIX paths are limited to ~107 bytes)
    temp_dir = tempfile.mkdtemp(prefix="sibcl-sim-", dir="/tmp")
    sim_id = uuid.uuid4().hex[:12]
    head_resources = config["available_node_types"][SIM_HEAD_TYPE]["resources"]
    custom = {k: v for k, v in head_resources.items() if k not in ("CPU", "GPU")}
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
        f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
        f"--num-cpus={head_resources.get('CPU', 0):g}", "--num-gpus=0",
        f"--resources={json.dumps(custom)}", f"--object-store-memory={settings.object_store_mib * MIB}",
        f"--autoscaling-config={config_file}",
        f"--dashboard-host={head['dashboard_host']}", f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_OVERRIDE_RESOURCES")}
    env.update({
        "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": head["RAY_AUTH_MODE"],
        "RAY_TMPDIR": temp_dir, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
        MARKER_ENV: sim_id,
    })
    if token != default_token_file():
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    head_log = state_dir / "head_start.log"
    sim = SimCluster(sim_id=sim_id, gcs_address=gcs_address, dashboard_url=f"http://127.0.0.1:{dashboard_port}",
                     temp_dir=temp_dir, token_file=str(token), config_file=str(config_file),
                     cluster_yaml=str(cluster_yaml), head_log=str(head_log))
    # recorded before the start, so that `down` finds what a failed or interrupted start left
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(sim), indent=1))
    try:
        with open(head_log, "w") as log:
            # a session of its own: the head's processes outlive this command and none of them
            # belongs to the caller's terminal (Ctrl-C there does not reach the cluster)
            started = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     timeout=timeout_s)
        if started.returncode != 0:
            tail = head_log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise SibclError(f"`ray start --head` of the simulation failed: {tail[0]} (log: {head_log})")
        _wait_for_dashboard(sim.dashboard_url, time.monotonic() + timeout_s)
    except subprocess.TimeoutExpired:
        down(state_dir, quiet=True)
        raise SibclError(f"`ray start --head` of the simulation did not finish in {timeout_s:g} s (log: {head_log})")
    except BaseException:  # a failed or interrupted start leaves nothing running
        down(state_dir, quiet=True)
        raise
    return sim


def down(state_dir: Path, grace_s: float = 15, quiet: bool = False) -> int:
    """Stop every process of the simulated cluster recorded in ``state_dir`` (``stop_marked``);
    returns how many there were. The Ray temp folder (logs) is kept."""
    state_dir = state_dir.expanduser().absolute()
    sim = read_state(state_dir)
    if sim is None:
        if not quiet:
            print(f"no simulated cluster recorded in {state_dir}: nothing to stop")
        return 0
    found, killed = stop_marked(sim.sim_id, grace_s)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if not quiet:
        print(f"stopped the simulated cluster {sim.dashboard_url}: {len(found)} processes"
              + (f", {len(killed)} of them killed after the grace period ({', '.join(sorted(killed))})" if killed
                 else "") + f"; its logs: {sim.temp_dir}")
    return len(found)


def stop_marked(sim_id: str, grace_s: float = 15) -> tuple[set[int], list[str]]:
    """Stop the Ray processes whose environment carries ``MARKER_ENV=sim_id``, in ``ray stop``'s
    order: raylets first (their agents fate-share with them), then everything else, the GCS last;
    each group gets SIGTERM and a third of ``grace_s``, then SIGKILL. Returns the pids found and
    the names of those that had to be killed. Unlike ``ray stop``, no other Ray on the machine
    is touched (``tests/test_jobs.py`` stops its ``ray start`` cluster this way too)."""
    found: set[int] = set()
    killed: list[str] = []
    for group in ("raylets", "others", "rest"):
        pids = cluster_processes(sim_id)
        if group == "raylets":
            pids = [p for p in pids if _process_name(p) == "raylet"]
        elif group == "others":
            pids = [p for p in pids if _process_name(p) != "gcs_server"]
        # "rest": the GCS, and anything that was started while the others were stopping
        found.update(pids)
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace_s / 3
        while (alive := [p for p in pids if _is_alive(p, sim_id)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        killed += [_process_name(p) for p in alive]
        _signal(alive, signal.SIGKILL)
    return found, killed


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _is_alive(pid: int, sim_id: str) -> bool:
    """Still running and still ours (not a zombie, whose environment reads empty, nor a reused pid)."""
    try:
        return f"{MARKER_ENV}={sim_id}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def client_env(sim: SimCluster) -> dict[str, str]:
    """What a client of the simulation (``ray job submit``, ``ray status``) needs in its environment.

    Besides the token: Ray's clients turn a GCS address of 127.0.0.1 into this machine's LAN
    address (``services.resolve_ip_for_localhost``), where nothing of the simulation listens,
    unless multi-node clusters are off in the client too, as on the simulation's own nodes.
    """
    env = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if Path(sim.token_file) != default_token_file():
        env["RAY_AUTH_TOKEN_PATH"] = sim.token_file
    return env


def status(state_dir: Path) -> int:
    """Ray's own ``ray status`` of the simulated cluster (nodes by type, pending demand)."""
    sim = read_state(state_dir.expanduser().absolute())
    if sim is None or not cluster_processes(sim.sim_id):
        raise SibclError(f"no simulated cluster is up (state dir {state_dir}): run `python -m sibcl_ray.cluster_sim up`")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(client_env(sim))
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", f"--address={sim.gcs_address}"],
                          env=env).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.cluster_sim",
        description="Run cluster.yaml's autoscaling cluster on this machine with Ray's fake multi-node provider: "
                    "a real head (no CPUs, the trial_driver slots) and real worker raylets that the real "
                    "autoscaler adds from zero, token auth on, dashboard on 127.0.0.1.")
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("up", help="start the head (workers are added on demand) and print how to reach it")
    start.add_argument("--cluster-yaml", type=Path, default=DEFAULT_CLUSTER_YAML,
                       help="the cluster-launcher file to simulate (default: this repository's cluster.yaml)")
    start.add_argument("--cpus-per-node", type=int, default=SimSettings.cpus_per_node,
                       help="CPUs of each worker node at most (default 1; a head with 0 CPUs keeps 0)")
    start.add_argument("--max-workers", type=int, default=SimSettings.max_workers,
                       help="max_workers of each worker type at most (default 2)")
    start.add_argument("--idle-timeout-minutes", type=float,
                       help="minutes before an idle worker is removed (default: cluster.yaml's)")
    start.add_argument("--object-store-mib", type=int, default=SimSettings.object_store_mib,
                       help="object store of each node in MiB (default 256)")
    for action in (start, sub.add_parser("down", help="stop every process of the simulated cluster"),
                   sub.add_parser("status", help="`ray status` of the simulated cluster")):
        action.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                            help=f"where the running simulation is recorded (default {DEFAULT_STATE_DIR})")
    return parser


def main(argv: list[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        if args.action == "down":
            down(args.state_dir)
            return 0
        if args.action == "status":
            return status(args.state_dir)
        settings = SimSettings(cpus_per_node=args.cpus_per_node, max_workers=args.max_workers,
                               idle_timeout_minutes=args.idle_timeout_minutes, object_store_mib=args.object_store_mib)
        sim = up(args.cluster_yaml, args.state_dir, settings)
        types = yaml.safe_load(Path(sim.config_file).read_text())["available_node_types"]
        print(f"simulated cluster up: {args.cluster_yaml} on this machine (autoscaling config {sim.config_file})")
        for name, node_type in types.items():
            print(f"  {name}: {node_type['resources']}, max_workers {node_type['max_workers']}")
        print(f"dashboard and Jobs API: {sim.dashboard_url}  (token auth on: {sim.token_file})\n"
              f"GCS: {sim.gcs_address}; Ray logs: {sim.temp_dir}\n"
              + "".join(f"export {k}={v}\n" for k, v in client_env(sim).items())
              + f"ray job submit --address {sim.dashboard_url} -- python -m sibcl_ray.tune … --address auto\n"
              "python -m sibcl_ray.cluster_sim down" + ("" if args.state_dir == DEFAULT_STATE_DIR
                                                        else f" --state-dir {args.state_dir}"))
        return 0

    return run_main(body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
