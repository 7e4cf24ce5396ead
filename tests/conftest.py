"""Shared fixtures: one real local Ray per test module, scratch temp folders."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Ray's sockets need a short path, and every dashboard start leaves a /tmp/pymp-* folder:
# keep all of it in one scratch folder per test session (docs/ray.md, Traps).
_SCRATCH = tempfile.mkdtemp(prefix="sibcl-", dir="/tmp")
os.environ.setdefault("RAY_TMPDIR", _SCRATCH)
os.environ.setdefault("TMPDIR", _SCRATCH)
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")

# Each xdist worker's first `ray.init` would otherwise generate ~/.ray/auth_token itself, and two
# doing so at once can leave one Ray holding a token the file no longer has.
from sibcl_ray.session import default_token_file, ensure_token_file  # noqa: E402

ensure_token_file(default_token_file())


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local Ray with 2 CPUs and trial-driver slots, shared by the tests of one module."""
    import ray

    # Workers import functions defined in test modules (plain Tune trainables) from tests/.
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 4}, include_dashboard=True, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a busy two-core machine two threads wait on each other many-fold longer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: A second local Ray, as `ray.init()` in another terminal starts one: it runs until its stdin closes.
_ANOTHER_RAY = """import sys, ray
ray.init(address="local", num_cpus=1, include_dashboard=False)
print("ready", flush=True)
sys.stdin.read()
ray.shutdown()
"""


@pytest.fixture
def another_local_ray() -> Iterator[None]:
    """Another local Ray on the machine for the length of a test (a second search, a benchmark):
    Ray's address discovery then sees two GCS processes (docs/ray.md, "Two local Rays")."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    other = subprocess.Popen([sys.executable, "-c", _ANOTHER_RAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert other.stdout.readline().strip() == "ready", other.stderr.read()[-2000:]
        yield
    finally:
        other.stdin.close()
        other.wait(timeout=120)
