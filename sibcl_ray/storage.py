"""Where runs are stored: a local folder, a shared file system, or a cloud URI (s3://, gs://, …).

On a multi-node cluster every node must write to the same place: a path that is only on the
driver's disk would leave checkpoints scattered over the workers' disks, so it is refused.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.fs

from sibcl_ray.errors import SibclError

#: File-system types (from /proc/mounts) that every node of a cluster can share.
SHARED_FS_TYPES = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "fuse.s3fs",
                   "fuse.gcsfuse", "fuse.juicefs", "fuse.sshfs", "efs", "9p", "virtiofs")


def is_uri(location: str) -> bool:
    return "://" in location


def resolve(location: str | Path) -> str:
    """An absolute local path, or the URI unchanged."""
    text = str(location)
    return text if is_uri(text) else str(Path(text).expanduser().absolute())


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


def mount_type(path: str) -> str:
    """File-system type of the mount holding ``path`` (longest mount-point prefix in /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    real = os.path.realpath(path)
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and (real == fields[1] or real.startswith(fields[1].rstrip("/") + "/")) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def check_location(location: str | Path, flag: str) -> None:
    """Refuse, before Ray starts, a URI whose scheme pyarrow cannot open or a folder that cannot exist."""
    text = str(location)
    if is_uri(text):
        scheme = text.split("://", 1)[0]
        if scheme not in ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file"):
            raise SibclError(f"{flag} {text}: unsupported URI scheme {scheme!r}; use a folder, s3://, gs://, abfs:// or hdfs://")
        return
    path = Path(text).expanduser()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SibclError(f"{flag} {text}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise SibclError(f"{flag} {text}: {parent} is not writable")
            return


def check_storage(location: str | None, flag: str, multi_node: bool) -> None:
    """Refuse a storage place that the nodes of a multi-node cluster cannot all reach."""
    if not multi_node:
        return
    if location is None:
        raise SibclError(f"{flag} is required on a multi-node cluster: give a cloud URI (s3://…, gs://…) "
                         "or a path on a shared file system (NFS, Lustre, …)")
    if is_uri(location):
        return
    kind = mount_type(location)
    if not kind.startswith(SHARED_FS_TYPES):
        raise SibclError(f"{flag} {location} is on a local {kind} file system, which the other nodes of this cluster "
                         "cannot reach: use a cloud URI (s3://…, gs://…) or a shared file system path")


def _filesystem(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if is_uri(location):
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), location


def list_dirs(location: str, prefix: str) -> list[str]:
    """Sub-folders of ``location`` whose names start with ``prefix``, as locations, sorted by name."""
    fs, root = _filesystem(location)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except (OSError, pyarrow.ArrowException):
        return []
    names = sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(prefix))
    return [join(location, n) for n in names]


def read_bytes(location: str) -> bytes | None:
    """Contents of a file, or None when it does not exist."""
    fs, path = _filesystem(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as handle:
        return handle.read()


def load_torch(location: str) -> Any | None:
    """A ``torch.save``d object at a local path or URI, or None when it does not exist."""
    import torch

    data = read_bytes(location)
    return None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def put_folder(local: str | Path, location: str) -> None:
    """Copy a local folder to ``location`` (a path or URI). A local copy appears whole (copied
    next to it, then renamed); a URI copy can be cut short, which readers of checkpoints allow
    for (``train.checkpoints.readable_state``)."""
    if is_uri(location):
        fs, path = _filesystem(location)
        pyarrow.fs.copy_files(str(local), path, destination_filesystem=fs)
        return
    target = Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(local, partial)
    os.replace(partial, target)


def delete_folder(location: str) -> None:
    """Remove a folder (path or URI) and everything in it; nothing when it is not there."""
    fs, path = _filesystem(location)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        fs.delete_dir(path)
