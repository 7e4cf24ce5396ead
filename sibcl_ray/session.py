"""Starting or joining Ray for a command: local by default, ``--address auto`` on a cluster.

A local run needs no network, so it keeps Ray on loopback. Ray 2.60 has no bind-address
setting: its GCS, raylet, object manager, workers and agents listen on 127.0.0.1 only when
the node's IP is literally 127.0.0.1, and on Linux ``ray.init`` replaces 127.0.0.1 by the
LAN address unless ``ENABLE_RAY_CLUSTER`` is off (``ray/_private/services.py``,
``get_node_ip_address``; it is off by default on macOS and Windows). We turn it off for local
runs, and keep Ray's token auth on (``RAY_AUTH_MODE=token``, the token in
``~/.ray/auth_token``, made here with mode 0600 when missing): whatever still listens refuses
a client without the token. An explicit ``RAY_AUTH_MODE`` of the user's is respected.
docs/ray.md lists what listens where. The dashboard stays on 127.0.0.1 on clusters too: an
exposed dashboard accepts job submissions, which run arbitrary code. Reach a cluster's with
``ray dashboard cluster.yaml``.

The terminal is kept for our own progress lines and Tune's trial table: worker output
(Train's per-report lines, Ray Data's execution plans, label tasks) is not forwarded to the
driver (``log_to_driver=False``) and Ray Data's console handler in this process is turned
down to warnings; all of it stays in the session's log folder, printed once at start.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from pathlib import Path
from typing import Any

import ray

from sibcl_ray.errors import SibclError
from sibcl_ray.resources import DRIVER_RESOURCE

#: Set in the workers' environment by a local Ray: every worker shares this host (``train.process_group``).
LOOPBACK_ENV = "SIBCL_LOCAL_RAY"
#: Environment every Ray worker of ours gets: silences a harmless Train V2 error line.
WORKER_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "PYTHONUNBUFFERED": "1"}


def start_ray(address: str | None, driver_slots: int = 0, num_cpus: int | None = None) -> str:
    """Start a local Ray (``address`` None) or join one; returns the dashboard URL (or '')."""
    if address not in (None, "auto"):
        check_reachable(address)
    worker_env = dict(WORKER_ENV)
    if address is None:
        keep_local_ray_on_loopback()
        worker_env.update(local_worker_env())
        worker_env.update(own_address_env())  # a new port each call: once per session
    os.environ.update(worker_env)
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": worker_env}, "log_to_driver": False}
    if address is None:  # "local": a new Ray even when a `ray start` cluster runs (or left its address file)
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                      resources={DRIVER_RESOURCE: driver_slots} if driver_slots else None)
    else:
        kwargs["address"] = address
    try:
        context = ray.init(**kwargs)
    except ConnectionError as err:
        raise SibclError(f"cannot reach a Ray cluster at --address {address!r} ({str(err).splitlines()[0]}); "
                         "use 'auto' on a cluster node, ray://HOST:10001, or leave it out for a local Ray") from None
    stop_on_sigterm_like_ctrl_c()
    url = context.dashboard_url or ""
    if url:
        print(f"Ray dashboard: http://{url}  (jobs, trials, metrics; local only; it asks for the token that "
              "`ray get-auth-token` prints)", flush=True)
    quiet_ray_data_console()
    print(f"Ray worker logs (Train reports, Ray Data plans, label tasks): {_logs_dir()}", flush=True)
    return url


def keep_local_ray_on_loopback() -> Path | None:
    """Before a local ``ray.init``: node IP 127.0.0.1 (so every Ray server binds loopback) and
    token auth on with a private token file; returns that file (None: the user chose a token
    through ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``, or turned auth off themselves)."""
    import ray._private.ray_constants as ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # processes that import ray later
    ray_constants.ENABLE_RAY_CLUSTER = False  # read once at import: this process imported ray already
    if "RAY_AUTH_MODE" in os.environ or os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return None
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")  # what Ray's own enable_token_auth_by_default does after setting the variable
    token = ensure_token_file(default_token_file())
    AuthenticationTokenLoader.instance().reset_cache()
    return token


def default_token_file() -> Path:
    """Where Ray 2.60 looks for the token when neither ``RAY_AUTH_TOKEN`` nor
    ``RAY_AUTH_TOKEN_PATH`` is set (docs/ray.md, Traps)."""
    return Path.home() / ".ray" / "auth_token"


def ensure_token_file(token: Path) -> Path:
    """The token file at ``token``, made (mode 0600, in a 0700 folder) when missing; one of ours
    that Ray wrote world-readable is made private.

    A new token is written whole or not at all: to a private draft first, then hard-linked into
    place, so runs started at the same moment (two terminals, parallel tests) share whichever
    token landed first and none reads a half-written file. Ray's own generation (``open(path,
    "w")`` in ``ray.init``) has no such guard, which is why the tests make the file first."""
    token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not token.exists():
        _create_token_file(token)
    elif token.stat().st_uid == os.getuid() and token.stat().st_mode & 0o077:
        token.chmod(0o600)  # Ray writes it world-readable
    return token


def _create_token_file(token: Path) -> None:
    draft = token.with_name(f".{token.name}.{os.getpid()}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(draft, token)
    except FileExistsError:
        pass  # another run made it first: use theirs
    finally:
        draft.unlink()


def local_worker_env() -> dict[str, str]:
    """Worker environment of a local Ray: DDP meets through a file, not a TCP port
    (``train.process_group``), and gloo connects over the loopback interface."""
    env = {LOOPBACK_ENV: "1"}
    loopback = next((name for _, name in socket.if_nameindex() if name.startswith("lo")), None)
    if loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        env["GLOO_SOCKET_IFNAME"] = loopback
    return env


def own_address_env() -> dict[str, str]:
    """Name this local Ray's address to its own processes before it starts.

    Ray's State API, called with no address inside a worker, finds "the" local Ray by scanning
    the machine for GCS processes and gives up when it sees two (another search, a benchmark, a
    second terminal). Ray Train's ``PlacementGroupCleaner`` asks it whether the Train controller
    is alive; when that fails its thread dies, the placement group of a finished DDP run is never
    removed, its CPUs stay reserved and the search then waits forever for the test evaluation
    (docs/ray.md, "Two local Rays"). So the head's GCS gets a free port chosen here
    (``RAY_GCS_SERVER_PORT``, read by Ray's node start-up) and every process of the session gets
    ``RAY_ADDRESS`` pointing at it."""
    port = free_port()
    return {"RAY_GCS_SERVER_PORT": str(port), "RAY_ADDRESS": f"127.0.0.1:{port}"}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_on_sigterm_like_ctrl_c() -> None:
    """Make SIGTERM take the Ctrl-C path.

    ``ray job stop`` and cluster schedulers stop a command with SIGTERM, and ``ray.init``
    installs a handler that turns it into ``sys.exit`` wherever the driver happens to be: a
    stack dump, and no chance for Tune to save its state. Instead, hand SIGTERM to whatever
    handles SIGINT at that moment: Tune's own handler while a search runs (it stops trials
    and checkpoints the experiment, and the command ends "… resume with --resume", status
    130), Python's KeyboardInterrupt otherwise (label generation: finished shards are kept).
    Give ``ray job stop`` time for that: ``RAY_JOB_STOP_WAIT_TIME_S`` (README, cluster section).
    """

    def forward(signum: int, frame: Any) -> None:
        print("stop signal (SIGTERM) received: stopping as on Ctrl-C", flush=True)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, forward)
        except ValueError:  # not the main thread: leave Ray's handler in place
            pass


def _logs_dir() -> str:
    """This node's Ray log folder (other nodes: ``ray logs`` or the dashboard's Logs tab)."""
    node = getattr(ray._private.worker, "_global_node", None)  # no public accessor in Ray 2.60
    if node is None:
        return "the logs/ folder of each node's Ray session (ray logs, or the dashboard)"
    return str(Path(node.get_session_dir_path()) / "logs")


def quiet_ray_data_console() -> None:
    """Ray Data's console lines in this process at warnings only; its log file keeps everything."""
    import ray.data  # noqa: F401  (configures the ray.data logger)

    for handler in logging.getLogger("ray.data").handlers:
        if "FileHandler" not in type(handler).__name__:
            handler.setLevel(logging.WARNING)


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at ``address`` (ray.init retries for long)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SibclError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise SibclError(f"cannot reach a Ray cluster at --address {address} ({err.strerror or err}); use 'auto' on a "
                         "cluster node, ray://HOST:10001 from outside, or leave it out for a local Ray") from None


def is_multi_node() -> bool:
    """Whether this cluster's workers can run on another machine than this driver, so that
    a local ``--storage``/``--data-dir`` would not reach them.

    Decided from what the cluster can become, not only from what is alive: a cluster that
    scales from zero (cluster.yaml) has only its head when a job starts. So: nodes on more
    than one host now, or an autoscaler (the head's monitor, started with
    ``--autoscaling-config``) whose provider launches machines and whose worker types may
    have nodes. Not multi-host: a ``ray start`` cluster without an autoscaling config (its
    monitor's provider is read-only), and Ray's fake provider, whose nodes are processes on
    this machine and share its disk (``python -m sibcl_ray.cluster_sim``)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len({n["NodeManagerAddress"] for n in alive}) > 1:
        return True
    config = autoscaling_config()
    if config is None or config.get("provider", {}).get("type") in ONE_HOST_PROVIDERS:
        return False
    types, head = config.get("available_node_types") or {}, config.get("head_node_type")
    if types:
        return any(int(spec.get("max_workers", 0)) > 0 for name, spec in types.items() if name != head)
    return int(config.get("max_workers", 0)) > 0  # the legacy format: one worker type


#: Autoscaler providers whose nodes never leave this machine.
ONE_HOST_PROVIDERS = ("fake_multinode", "readonly")


def autoscaling_config() -> dict[str, Any] | None:
    """The autoscaling config of this cluster's autoscaler, read from the file named on its
    monitor's command line (the head runs it; a job's driver runs on the head), or None when
    no monitor of this cluster runs on this machine or it was started without one. Ray 2.60
    keeps no copy of it in the GCS for the v1 autoscaler (``state.get_cluster_config()`` is None)."""
    import psutil  # Ray vendors it

    gcs = ray.get_runtime_context().gcs_address
    port = gcs.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        command = proc.info.get("cmdline") or []
        if not any(part.endswith("_private/monitor.py") for part in command):
            continue
        address = next((part.split("=", 1)[1] for part in command if part.startswith("--gcs-address=")), "")
        if address.rsplit(":", 1)[-1] != port:
            continue
        path = next((part.split("=", 1)[1] for part in command if part.startswith("--autoscaling-config=")), None)
        if path is None:
            return None
        import yaml

        try:
            return yaml.safe_load(Path(path).expanduser().read_text()) or {}
        except OSError:
            return None
    return None
