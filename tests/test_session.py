"""`sibcl_ray.session`: a local Ray on loopback behind the token; SIGTERM takes the Ctrl-C path;
`cli.run_main` ends an interruption in one line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sibcl_ray.cli import run_main
from sibcl_ray.session import stop_on_sigterm_like_ctrl_c


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sigterm_is_handed_to_whatever_handles_sigint_now(restore_handlers) -> None:
    """Tune installs its own SIGINT handler while a search runs; SIGTERM must reach that one."""
    seen: list[int] = []
    stop_on_sigterm_like_ctrl_c()
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # what Tune does inside fit()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)  # the handler runs in the main thread between bytecodes
    assert seen == [signal.SIGINT]


def test_sigterm_without_a_sigint_handler_is_a_keyboard_interrupt(restore_handlers, capsys) -> None:
    stop_on_sigterm_like_ctrl_c()
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def body(args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    assert run_main(body, argparse.ArgumentParser(), []) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stopped: interrupted; finished work") and "rerun the same command" in err[0]


#: Imports first, says so, then sleeps until the moment the test names, so the processes wake
#: together and really race for the file.
_MAKE_TOKEN = """import sys, time
from pathlib import Path
import ray._raylet
from sibcl_ray.session import keep_local_ray_on_loopback
Path(sys.argv[1], sys.argv[2]).touch()
go = Path(sys.argv[1], "go")
while not go.exists() or not go.read_text():
    time.sleep(0.01)
time.sleep(max(0.0, float(go.read_text()) - time.time()))
print(keep_local_ray_on_loopback())
"""


def test_runs_started_at_once_share_one_whole_token_file(tmp_path: Path) -> None:
    """Six real processes make the token at the same moment (two terminals, parallel tests): one
    file, 0600, whole, no drafts left, and each process saw it made or found, never a crash."""
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("RAY_AUTH_MODE", None)
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _MAKE_TOKEN, str(gate), f"ready-{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    deadline = time.monotonic() + 120
    while len(list(gate.glob("ready-*"))) < 6 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (gate / "go.tmp").write_text(str(time.time() + 0.5))
    (gate / "go.tmp").rename(gate / "go")
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-1000:] for _, err in outputs]
    token = tmp_path / ".ray" / "auth_token"
    assert {out.strip() for out, _ in outputs} == {str(token)}
    assert sorted(p.name for p in token.parent.iterdir()) == ["auth_token"]
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    int(token.read_text(), 16)  # hex, written whole


#: Run in a fresh process (HOME in a temporary folder, so the token file is its own): a local Ray
#: as the commands start it, a task and a 2-worker DDP run (gloo) while a thread records every
#: listening socket of the Ray processes; then each socket still open is called with and without
#: the token: gRPC on a real method of each Ray service, HTTP on the dashboard's API.
_PROBE = r'''
import json, os, sys, threading, time, urllib.error, urllib.request
from pathlib import Path
import grpc
from sibcl_ray.session import start_ray
import ray, psutil, ray.train
from ray.train.torch import TorchTrainer
from sibcl_ray.train.process_group import torch_config_for_this_ray

start_ray(None, num_cpus=2)
seen, done = set(), threading.Event()

def listeners():
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            found |= {(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found

def sample():
    while not done.is_set():
        seen.update(listeners())
        time.sleep(0.2)

thread = threading.Thread(target=sample, daemon=True)
thread.start()
ray.get(ray.remote(lambda: os.getpid()).remote())

def loop(config):
    import torch, torch.distributed as dist
    x = torch.ones(1)
    dist.all_reduce(x)
    assert x.item() == 2.0
    time.sleep(3)

TorchTrainer(loop, torch_config=torch_config_for_this_ray(),
             scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5})).fit()
done.set(); thread.join()
token_file = Path.home() / ".ray" / "auth_token"
bearer = "Bearer " + token_file.read_text().strip()
METHODS = ["/ray.rpc.NodeInfoGcsService/GetAllNodeInfo", "/ray.rpc.NodeManagerService/GetNodeStats",
           "/ray.rpc.ObjectManagerService/Pull", "/ray.rpc.CoreWorkerService/NumPendingTasks",
           "/ray.rpc.ReporterService/HealthCheck"]

def grpc_codes(port, metadata):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    codes = {}
    for method in METHODS:
        try:
            channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)(b"", timeout=5, metadata=metadata)
            codes[method] = "OK"
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                codes[method] = err.code().name
    channel.close()
    return codes

def http_status(port, headers):
    try:
        return urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/version", headers=headers), timeout=5).status
    except urllib.error.HTTPError as err:
        return err.code
    except Exception:
        return None

def prometheus_page(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read(20000).decode()
    except Exception:
        return False
    return "# TYPE " in text and "# HELP " in text

probes = [{"process": name, "ip": ip, "port": port, "prometheus": prometheus_page(port),
           "grpc_without": grpc_codes(port, None), "grpc_with": grpc_codes(port, (("authorization", bearer),)),
           "http_without": http_status(port, {}), "http_with": http_status(port, {"Authorization": bearer})}
          for name, ip, port in sorted(listeners())]
print("PROBE " + json.dumps({"seen": sorted(seen), "probes": probes, "token_mode": token_file.stat().st_mode & 0o777,
                             "metrics_port": ray.nodes()[0]["MetricsExportPort"]}))
ray.shutdown()
'''


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only_and_every_port_wants_the_token(tmp_path: Path) -> None:
    """Issue #16: a local run opened 11 sockets beyond loopback at start, 34 during a search."""
    env = dict(os.environ, HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    env.pop("RAY_AUTH_MODE", None)
    result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    line = next((l for l in result.stdout.splitlines() if l.startswith("PROBE ")), None)
    assert result.returncode == 0 and line, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(line[len("PROBE "):])
    beyond = [s for s in report["seen"] if s[1] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    assert beyond == [], beyond  # the DDP run included: its rendezvous is a file, gloo is on lo
    names = {s[0] for s in report["seen"]}
    assert {"gcs_server", "raylet"} <= names and any("RayTrainWorker" in n for n in names), names
    assert report["token_mode"] == 0o600
    unprotected = []
    for probe in report["probes"]:
        refused_grpc = [m for m, code in probe["grpc_without"].items() if code == "UNAUTHENTICATED"]
        grpc_ok = refused_grpc and all(probe["grpc_with"].get(m) == "OK" for m in refused_grpc)
        http_ok = probe["http_without"] == 401 and probe["http_with"] not in (None, 401, 403)
        if not (grpc_ok or http_ok):
            unprotected.append(probe)
    # what Ray serves without the token are its read-only Prometheus pages (node, dashboard and
    # autoscaler metrics), on loopback like the rest
    assert unprotected and all(p["prometheus"] for p in unprotected), unprotected
    assert report["metrics_port"] in [p["port"] for p in unprotected]
    assert len(report["probes"]) >= 6  # GCS, raylet ×2, agent, runtime-env agent, dashboard, workers


#: An on-premises autoscaling cluster (Ray's ``local`` provider) whose one worker type lives on
#: another machine (192.0.2.77, a documentation address nothing answers): the case a local
#: --data-dir must be refused in, while only the head is alive.
_MULTI_HOST_CONFIG = {
    "cluster_name": "sibcl-multi-host-check", "max_workers": 1, "idle_timeout_minutes": 5, "upscaling_speed": 1.0,
    "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": ["192.0.2.77"]},
    "auth": {"ssh_user": "nobody"},
    "available_node_types": {"head": {"node_config": {}, "resources": {"CPU": 1}, "min_workers": 0, "max_workers": 0},
                             "worker": {"node_config": {}, "resources": {"CPU": 1}, "min_workers": 0, "max_workers": 1}},
    "head_node_type": "head",
    **{key: [] for key in ("cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
                           "setup_commands", "head_setup_commands", "worker_setup_commands", "head_start_ray_commands",
                           "worker_start_ray_commands")},
    "file_mounts": {}, "file_mounts_sync_continuously": False,
}


@pytest.mark.slow
def test_an_autoscaler_that_can_add_other_machines_makes_local_paths_refused_before_any_work(tmp_path: Path) -> None:
    """Issue #17: a cluster scaling from 0 has only its head when a job starts, so "multi-node"
    is read from the autoscaler's config (a plain `ray start` cluster and the fake provider's
    one-machine cluster are accepted: tests/test_jobs.py, tests/test_cluster_sim.py)."""
    import uuid

    import yaml

    from sibcl_ray.cluster_sim import MARKER_ENV, free_port, stop_marked

    config = tmp_path / "autoscaling.yaml"
    config.write_text(yaml.safe_dump(_MULTI_HOST_CONFIG))
    marker, port = uuid.uuid4().hex, free_port()
    ray_temp = Path(tempfile.mkdtemp(prefix="sibcl-", dir="/tmp"))  # Ray's socket paths must stay < 108 bytes
    env = dict(os.environ, HOME=str(tmp_path), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               **{MARKER_ENV: marker})
    env.pop("RAY_ADDRESS", None)
    try:
        started = subprocess.run(["ray", "start", "--head", "--port", str(port), "--dashboard-port", str(free_port()),
                                  "--num-cpus", "1", "--temp-dir", str(ray_temp), "--disable-usage-stats",
                                  f"--autoscaling-config={config}"], env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]
        run = subprocess.run([sys.executable, "-m", "sibcl_ray.tune", "--problem", "phc", "--preset", "smoke",
                              "--address", f"127.0.0.1:{port}", "--output", str(tmp_path / "out"),
                              "--data-dir", str(tmp_path / "data")], env=env, capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
    finally:
        stop_marked(marker)
        shutil.rmtree(ray_temp, ignore_errors=True)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and errors == [
        "error: --storage is required on a multi-node cluster: give a cloud URI (s3://…, gs://…) or a path on a "
        "shared file system (NFS, Lustre, …)"], run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stderr and not (tmp_path / "data").exists()  # refused before any work
