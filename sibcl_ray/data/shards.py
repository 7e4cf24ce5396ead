"""Parquet shards of (index, x, y[, c]) with a per-split manifest of row counts and checksums.

``c`` is each input's cheap label (``Problem.cheap_labels``), in the labelled target splits of a
problem that declares one, when a run needs it; a shard made without it gains the column later
(``add_cheap_column``: x and y are copied as they are, nothing is solved again).

Layout of one dataset (one problem signature and one seed)::

    <root>/<problem>-<hash>/signature.json
    <root>/<problem>-<hash>/<split>/shard-00000.parquet
    <root>/<problem>-<hash>/<split>/manifest.json

Shard ``i`` of a split always holds samples ``i*shard_size … (i+1)*shard_size - 1`` drawn
from a seed derived from (seed, split, i), so shards are reproducible, a larger run reuses
the shards of a smaller one, and a crashed generation only redoes what is missing.
A split's shard size is fixed by the run that creates it and recorded in its manifest
(``split_shard_size``): a later run of another preset reads and extends the split in that
size instead of calling its shards wrong.
Shards are written to a temporary name and renamed, so a half-written file never carries
a shard's name. No Ray here: the generation and loading glue lives beside this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sibcl_ray.errors import ShardError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SplitSpec:
    """A named split: which generator fills it and whether it carries labels."""

    name: str
    source: str  # "target" or "surrogate"
    labelled: bool


SPLITS: dict[str, SplitSpec] = {
    "unlabeled": SplitSpec("unlabeled", "target", labelled=False),
    "surrogate": SplitSpec("surrogate", "surrogate", labelled=True),
    "train": SplitSpec("train", "target", labelled=True),
    "val": SplitSpec("val", "target", labelled=True),
    "test": SplitSpec("test", "target", labelled=True),
}


def dataset_dir(root: Path, signature: dict[str, Any], seed: int) -> Path:
    """Folder of the dataset for a problem signature and seed (created with its signature)."""
    key = json.dumps({"signature": signature, "seed": seed}, sort_keys=True)
    folder = Path(root).expanduser().absolute() / f"{signature['problem']}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    sig_file = folder / "signature.json"
    if not sig_file.exists():
        _write_atomic(sig_file, (key + "\n").encode())
    return folder


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def shard_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The random stream of one shard: independent across splits and shards."""
    return np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])


def shards_needed(count: int, shard_size: int) -> int:
    return -(-count // shard_size)


#: The column of the cheap labels.
CHEAP = "c"


def write_shard(path: Path, first_index: int, x: np.ndarray, y: np.ndarray | None,
                c: np.ndarray | None = None) -> dict[str, Any]:
    """Write one shard atomically; returns its manifest entry (rows, sha256, first index, columns)."""
    columns: dict[str, pa.Array] = {
        "index": pa.array(np.arange(first_index, first_index + len(x), dtype=np.int64)),
        "x": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(x, dtype=np.float32)),
    }
    if y is not None:
        columns["y"] = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(y, dtype=np.float32))
    if c is not None:
        columns[CHEAP] = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(c, dtype=np.float32))
    return _write_table(path, pa.table(columns), first_index)


def add_cheap_column(path: Path, first_index: int, c: np.ndarray) -> dict[str, Any]:
    """Give an existing shard its cheap-label column (replacing one it has), atomically; every
    other column is copied unchanged. Returns its new manifest entry."""
    table = pq.read_table(path)
    if CHEAP in table.column_names:
        table = table.drop_columns([CHEAP])
    if len(c) != table.num_rows:
        raise ValueError(f"{len(c)} cheap labels for the {table.num_rows} rows of {path}")
    column = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(c, dtype=np.float32))
    return _write_table(path, table.append_column(CHEAP, column), first_index)


def _write_table(path: Path, table: pa.Table, first_index: int) -> dict[str, Any]:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        entry = manifest_entry(tmp, first_index, table.num_rows)
        os.replace(tmp, path)
    except BaseException:  # disk full, read-only, killed: leave no partial file behind
        tmp.unlink(missing_ok=True)
        raise
    return entry


def manifest_entry(path: Path, first_index: int, rows: int) -> dict[str, Any]:
    """The manifest record of a shard file: row count, first sample index, SHA-256, columns."""
    return {"rows": rows, "first_index": first_index, "sha256": _sha256(path),
            "columns": list(pq.read_schema(path).names)}


def has_cheap(path: Path, entry: dict[str, Any] | None) -> bool:
    """Whether a (checked) shard holds the cheap-label column: its manifest says so, or, for an
    entry written before entries listed their columns, its Parquet schema does."""
    if entry is not None and "columns" in entry:
        return CHEAP in entry["columns"]
    return CHEAP in pq.read_schema(path).names


def split_shard_size(split_dir: Path, requested: int) -> int:
    """The shard size a split was created with, or ``requested`` for a split with no shards yet.

    Every shard is written full, so manifests from before the ``shard_size`` key carry it as
    the row count of any of their entries.
    """
    manifest = read_manifest(split_dir)
    if "shard_size" in manifest:
        return int(manifest["shard_size"])
    rows = {entry.get("rows") for entry in manifest["shards"].values()}
    if len(rows) == 1 and isinstance(next(iter(rows)), int) and next(iter(rows)) > 0:
        return int(next(iter(rows)))
    return requested


def read_manifest(split_dir: Path) -> dict[str, Any]:
    path = split_dir / MANIFEST
    if not path.exists():
        return {"shards": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"manifest {path} is not valid JSON ({err.msg}); delete it to rebuild it from the shards") from None


def write_manifest(split_dir: Path, manifest: dict[str, Any]) -> None:
    _write_atomic(split_dir / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())


def check_shard(path: Path, entry: dict[str, Any] | None, first_index: int, rows: int, labelled: bool) -> str | None:
    """Why the shard at ``path`` is not good, or None when it is.

    With a manifest entry the checksum decides; a shard with no entry (the generator was
    killed between writing it and recording it) is opened and checked row by row.
    """
    if not path.exists():
        return "missing"
    if entry is not None:
        if entry.get("rows") != rows or entry.get("first_index") != first_index:
            return f"manifest says {entry.get('rows')} rows from index {entry.get('first_index')}, expected {rows} from {first_index}"
        if _sha256(path) != entry.get("sha256"):
            return "checksum differs from the manifest (corrupt or truncated file)"
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        return f"unreadable Parquet ({str(err).splitlines()[0]})"
    expected = np.arange(first_index, first_index + rows)
    if table.num_rows != rows or not np.array_equal(table.column("index").to_numpy(), expected):
        return f"holds {table.num_rows} rows, expected indices {first_index}..{first_index + rows - 1}"
    if labelled and "y" not in table.column_names:
        return "has no label column"
    return None


def verified_shards(split_dir: Path, count: int, shard_size: int, labelled: bool, cheap: bool = False) -> list[Path]:
    """Paths of the shards that hold the first ``count`` samples; raises on any bad shard (with
    ``cheap``, also on one without the cheap-label column)."""
    manifest = read_manifest(split_dir)["shards"]
    paths = []
    for i in range(shards_needed(count, shard_size)):
        path = split_dir / shard_name(i)
        problem = check_shard(path, manifest.get(path.name), i * shard_size, shard_size, labelled)
        if problem is not None:
            raise ShardError(
                f"shard {path} is {problem}: rerun generation with --repair to regenerate it"
                if problem != "missing"
                else f"shard {path} is missing: run generation for split {split_dir.name!r} first"
            )
        if cheap and not has_cheap(path, manifest.get(path.name)):
            raise ShardError(f"shard {path} has no cheap-label column: rerun generation, which adds it")
        paths.append(path)
    return paths


def read_split(paths: list[Path], count: int) -> dict[str, np.ndarray]:
    """The first ``count`` rows of verified shards as arrays (for evaluation outside Ray Data)."""
    table = pa.concat_tables(pq.read_table(p) for p in paths).slice(0, count)
    out = {"index": table.column("index").to_numpy()}
    for name in ("x", "y", CHEAP):
        if name in table.column_names:
            out[name] = table.column(name).combine_chunks().to_numpy_ndarray()
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` whole or not at all: a failed write (disk full) leaves the old file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
