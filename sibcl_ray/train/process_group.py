"""A DDP process group that meets through a file, so a local multi-worker run opens no network port.

Ray Train's ``TorchConfig`` knows two rendezvous, ``env://`` and ``tcp://``; both start
torch's ``TCPStore`` on rank 0, and torch 2.13 binds that store to every interface
(``::``) with no option to choose and no authentication. On a local Ray (every worker on
this machine, ``session.keep_local_ray_on_loopback``) that store was the one port a run left
open to the network. torch's ``FileStore`` (``init_method="file://…"``) needs no port at all:
the workers share this machine's disk. gloo's own connections are kept on the loopback
interface through ``GLOO_SOCKET_IFNAME`` (set with the local Ray's worker environment).

On a cluster the workers are on several machines and the file would need a shared disk, so
runs there keep Ray's ``env://`` rendezvous, inside the cluster's security group.

    from sibcl_ray.train.process_group import FileStoreTorchConfig
    TorchTrainer(loop, torch_config=FileStoreTorchConfig(), ...)
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group, _TorchBackend

from sibcl_ray.session import LOOPBACK_ENV


def torch_config_for_this_ray() -> TorchConfig | None:
    """The file rendezvous on a local Ray, Ray's default (``env://``) anywhere else."""
    return FileStoreTorchConfig() if os.environ.get(LOOPBACK_ENV) == "1" else None


@dataclass
class FileStoreTorchConfig(TorchConfig):
    """``TorchConfig`` whose process group rendezvous is a ``FileStore`` in ``store_dir``
    (default: the temporary folder), one fresh file per worker-group start."""

    store_dir: str = ""

    @property
    def backend_cls(self) -> type:
        return _FileStoreBackend


class _FileStoreBackend(_TorchBackend):
    """Ray's torch backend with the rendezvous through a file instead of rank 0's TCP port."""

    _store: Path | None = None

    def on_start(self, worker_group: Any, backend_config: FileStoreTorchConfig) -> None:
        backend = backend_config.backend
        if backend is None:
            backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
        folder = Path(backend_config.store_dir or tempfile.gettempdir())
        self._store = folder / f"sibcl-process-group-{uuid.uuid4().hex}"  # a restarted group must not reuse one
        worker_group.execute(_set_torch_distributed_env_vars)
        ray.get([worker_group.execute_single_async(rank, _setup_torch_process_group, backend=backend, world_rank=rank,
                                                   world_size=len(worker_group), init_method=f"file://{self._store}",
                                                   timeout_s=backend_config.timeout_s)
                 for rank in range(len(worker_group))])

    def on_shutdown(self, worker_group: Any, backend_config: FileStoreTorchConfig) -> None:
        super().on_shutdown(worker_group, backend_config)
        if self._store is not None:
            self._store.unlink(missing_ok=True)
