"""Datasets a user brings: their own inputs and labels, as verified shards beside generated ones.

SIB-CL's users often have labels no built-in solver makes (DFT, FDTD, a measurement, the
reference code's MPB runs). ``python -m sibcl_ray.import`` turns one file (or an inputs file
and a labels file) into one split of a named dataset::

    <data-dir>/<name>/dataset.json            problem, its signature, one record per split
    <data-dir>/<name>/<split>/shard-00000.parquet
    <data-dir>/<name>/<split>/manifest.json   rows, first index and SHA-256 of every shard

Everything is checked before anything is written (shape, finite values, the problem's input
range, label/input counts, a split that already exists, inputs shared with another split),
and a split is written under a temporary name and renamed, so a refused or failed import
leaves nothing behind. An imported split is never overwritten, extended or "repaired".

``tune`` and ``benchmark`` take ``--dataset NAME``: each split the dataset holds is used whole
(its size replaces the preset's), and a split it lacks is generated as usual when the problem
can generate (``Problem.generates``); otherwise a method needing it is refused.

For a problem with a per-input cheap label (``Problem.cheap_label``) the import computes it for
the inputs of a labelled split (column ``c``, beside x and y); a split imported before that gains
the column when a multi-fidelity run first needs it (``add_cheap_labels``: the only change an
imported split ever sees, its inputs and labels copied as they are).

Example::

    from sibcl_ray.data.imported import import_split
    import_split(get_problem("phc"), root, "mine", "train", Path("cells.npy"), Path("dos.npy"))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sibcl_ray.data import shards
from sibcl_ray.errors import ShardError, SibclError
from sibcl_ray.problems import Problem

DATASET_FILE = "dataset.json"
FORMAT = "sibcl_ray.imported/1"
#: File suffixes read here; others (the reference's HDF5) are the problem's (``Problem.read_foreign_file``).
OWN_SUFFIXES = (".npy", ".npz", ".parquet")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: Inputs may exceed the problem's range by this much (float32 rounding of a value at the edge).
_RANGE_SLACK = 1e-5


@dataclass(frozen=True)
class ImportedDataset:
    """An imported dataset as a run sees it: its folder and, per split, (shard paths, sample count)."""

    folder: Path
    splits: dict[str, tuple[list[Path], int]]


def check_name(name: str, flag: str = "--name") -> str:
    if not _NAME.match(name):
        raise SibclError(f"{flag} {name!r} is not a dataset name: use letters, digits, '.', '_' and '-' "
                         "(starting with a letter or digit, at most 100 characters)")
    return name


def read_source(path: Path, what: str, problem: Problem) -> tuple[np.ndarray, np.ndarray | None]:
    """The arrays in one user file: (inputs or labels, labels found beside inputs or None).

    ``.npy``: one array. ``.npz``: ``x`` (inputs) and/or ``y`` (labels). ``.parquet``: columns
    ``x`` and/or ``y`` (a shard written here, or list/tensor columns). Anything else is handed
    to the problem, which may know a foreign layout (phc: the reference code's HDF5).
    """
    if not path.is_file():
        raise SibclError(f"--{what} {path} is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _numeric(np.load(path, allow_pickle=False), what, path), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                key = "x" if what == "inputs" else "y"
                if key not in archive.files:
                    raise SibclError(f"--{what} {path} has no array {key!r} (it has: {', '.join(archive.files) or 'none'})")
                extra = archive["y"] if what == "inputs" and "y" in archive.files else None
                return _numeric(archive[key], what, path), None if extra is None else _numeric(extra, "labels", path)
        if suffix == ".parquet":
            table = pq.read_table(path)
            key = "x" if what == "inputs" else "y"
            if key not in table.column_names:
                raise SibclError(f"--{what} {path} has no column {key!r} (it has: {', '.join(table.column_names)})")
            extra = _column(table, "y") if what == "inputs" and "y" in table.column_names else None
            return _numeric(_column(table, key), what, path), None if extra is None else _numeric(extra, "labels", path)
    except (ValueError, OSError, pa.ArrowException) as err:  # not an array file at all, or a damaged one
        if isinstance(err, SibclError):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SibclError(f"--{what} {path} cannot be read as {suffix}: {first}") from None
    x, y = problem.read_foreign_file(path)
    return (_numeric(x, what, path), None if y is None else _numeric(y, "labels", path))


def _column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype == object:  # list columns: one array per row
        return np.stack([np.asarray(v, dtype=np.float64) for v in values])
    return values


def _numeric(array: np.ndarray, what: str, path: Path) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise SibclError(f"--{what} {path} holds {array.dtype} values: numbers are needed")
    return array


def checked_inputs(x: np.ndarray, problem: Problem, source: str) -> np.ndarray:
    """Inputs of shape (N, *input_shape), finite and inside the problem's range, as float32."""
    expected = tuple(problem.input_shape)
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected or len(x) == 0:
        raise SibclError(f"inputs in {source} have shape {tuple(x.shape)}: --problem {problem.name} needs "
                         f"(N, {', '.join(map(str, expected))}) with N ≥ 1")
    bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise SibclError(f"inputs in {source}: sample {int(np.argmax(bad))} (and {int(bad.sum()) - 1} more) "
                         "holds NaN or infinite values")
    lo, hi = problem.input_range
    slack = _RANGE_SLACK * max(1.0, abs(hi - lo))
    low, high = float(x.min()), float(x.max())
    if low < lo - slack or high > hi + slack:
        raise SibclError(f"inputs in {source} span [{low:g}, {high:g}]: --problem {problem.name} takes values in "
                         f"[{lo:g}, {hi:g}] (its physical range)")
    return np.clip(x, lo, hi).astype(np.float32)


def checked_labels(y: np.ndarray, problem: Problem, count: int, source: str) -> np.ndarray:
    """Labels of shape (count, label_dim) — (count,) for a scalar label — finite, as float32."""
    if y.ndim == 1 and problem.label_dim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != problem.label_dim:
        raise SibclError(f"labels in {source} have shape {tuple(y.shape)}: --problem {problem.name} needs "
                         f"(N, {problem.label_dim})" + (" or (N,)" if problem.label_dim == 1 else ""))
    if len(y) != count:
        raise SibclError(f"labels in {source} are {len(y)} rows for {count} inputs: one label per input is needed")
    bad = ~np.isfinite(y).all(axis=1)
    if bad.any():
        raise SibclError(f"labels in {source}: label {int(np.argmax(bad))} (and {int(bad.sum()) - 1} more) "
                         "holds NaN or infinite values")
    return y.astype(np.float32)


def parse_rows(text: str | None, count: int) -> slice:
    """``--rows START:STOP`` (Python slice bounds, either may be left out) checked against ``count``."""
    if text is None:
        return slice(0, count)
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    start, stop = (int(match.group(1) or 0), int(match.group(2) or count)) if match else (-1, -1)
    if not match or not 0 <= start < stop <= count:
        raise SibclError(f"--rows {text!r} is not START:STOP with 0 ≤ START < STOP ≤ {count} (the file's rows)")
    return slice(start, stop)


def import_split(problem: Problem, root: Path, name: str, split: str, inputs: Path, labels: Path | None = None,
                 rows: str | None = None, shard_size: int = 100) -> dict[str, Any]:
    """Check the user's arrays and write them as split ``split`` of dataset ``name``; returns its record."""
    check_name(name)
    if split not in shards.SPLITS:
        raise SibclError(f"--split {split!r} is unknown: allowed values are {', '.join(shards.SPLITS)}")
    labelled = shards.SPLITS[split].labelled
    folder = Path(root).expanduser().absolute() / name
    meta = _read_meta(folder, problem) if folder.exists() else None
    if meta is not None and split in meta["splits"]:
        raise SibclError(f"split {split!r} of dataset {name!r} already exists ({folder / split}, "
                         f"{meta['splits'][split]['count']} samples): imported data is never replaced; "
                         "import into another --name")
    if labels is not None and not labelled:
        raise SibclError(f"--split {split} holds inputs only: leave out --labels {labels}")

    x, beside = read_source(inputs, "inputs", problem)
    chosen = parse_rows(rows, len(x))  # --rows picks the same rows of the inputs and the labels
    y = None
    if labelled:
        if labels is not None:
            y = read_source(labels, "labels", problem)[0]
        elif beside is not None:
            y = beside
        else:
            raise SibclError(f"--split {split} needs labels: give --labels FILE (or an .npz/.parquet/HDF5 "
                             f"inputs file that holds them; {inputs} holds none)")
        if len(y) != len(x):
            raise SibclError(f"labels in {labels or inputs} are {len(y)} rows for {len(x)} inputs in {inputs}: "
                             "one label per input is needed")
        y = checked_labels(y[chosen], problem, chosen.stop - chosen.start, str(labels or inputs))
    x = checked_inputs(x[chosen], problem, str(inputs))
    cheap = _cheap_labels(problem, x, split, str(inputs))
    hashes = _hash_rows(x)
    if meta is not None:
        _refuse_shared_inputs(folder, meta, split, hashes)

    staging, placed = folder / f".{split}.importing-{os.getpid()}", False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        manifest: dict[str, Any] = {"shard_size": shard_size, "shards": {}}
        for i in range(shards.shards_needed(len(x), shard_size)):
            part = slice(i * shard_size, (i + 1) * shard_size)
            entry = shards.write_shard(staging / shards.shard_name(i), i * shard_size, x[part],
                                       None if y is None else y[part], None if cheap is None else cheap[part])
            manifest["shards"][shards.shard_name(i)] = entry
        shards.write_manifest(staging, manifest)
        record = {"count": int(len(x)), "source": {"inputs": _describe_file(inputs),
                                                   **({"labels": _describe_file(labels)} if labels else {})},
                  "rows": [chosen.start, chosen.stop], "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "input_hashes": hashes}
        meta = meta or {"format": FORMAT, "problem": problem.name, "signature": problem.signature(), "splits": {}}
        meta["splits"][split] = record
        os.replace(staging, folder / split)  # the split appears whole or not at all
        placed = True
        _write_meta(folder, meta)
    except BaseException as err:  # a full or read-only disk, an interruption: leave nothing of this import
        shutil.rmtree(staging, ignore_errors=True)
        if placed:  # written by this call a moment ago, and not recorded: not the user's data yet
            shutil.rmtree(folder / split, ignore_errors=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        if isinstance(err, OSError):
            raise SibclError(f"cannot write dataset {name!r} in {root}: {err.strerror or err} "
                             f"({err.filename or folder}); nothing of this import was kept") from None
        raise
    return {"dataset": str(folder), "split": split, **{k: v for k, v in record.items() if k != "input_hashes"}}


def _cheap_labels(problem: Problem, x: np.ndarray, split: str, source: str) -> np.ndarray | None:
    """The cheap labels of a labelled split's inputs, for a problem that has them (else None)."""
    spec = shards.SPLITS[split]
    if problem.cheap_label is None or not spec.labelled or spec.source != "target":
        return None
    c = problem.cheap_labels(x)
    if not np.all(np.isfinite(c)):
        raise SibclError(f"inputs in {source}: the cheap solver gives a non-finite value for input "
                         f"{int(np.argmax(~np.isfinite(c).all(axis=1)))}")
    return c


def add_cheap_labels(dataset: ImportedDataset, problem: Problem, split: str) -> list[Path]:
    """Give the shards of an imported split that lack it their cheap-label column (a split
    imported before the column existed); returns the shards that gained it."""
    split_dir = dataset.folder / split
    manifest = shards.read_manifest(split_dir)
    changed = []
    for path in dataset.splits[split][0]:
        entry = manifest["shards"][path.name]
        if shards.has_cheap(path, entry):
            continue
        x = shards.read_split([path], entry["rows"])["x"]
        c = _cheap_labels(problem, x, split, str(path))
        if c is not None:
            manifest["shards"][path.name] = shards.add_cheap_column(path, entry["first_index"], c)
            shards.write_manifest(split_dir, manifest)
            changed.append(path)
    return changed


def _describe_file(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(Path(path).absolute()), "sha256": digest.hexdigest()}


def _hash_rows(x: np.ndarray) -> list[str]:
    """Short digests of every input, to refuse the same input in two splits (a leak into test)."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in flat]


def _refuse_shared_inputs(folder: Path, meta: dict[str, Any], split: str, mine: list[str]) -> None:
    for other, record in meta["splits"].items():
        shared = set(mine) & set(record.get("input_hashes", []))
        if shared:
            first = next(i for i, h in enumerate(mine) if h in shared)
            raise SibclError(f"{len(shared)} inputs of --split {split} (the first: row {first}) are already in split "
                             f"{other!r} of dataset {folder.name!r}: splits must not share inputs")


def _read_meta(folder: Path, problem: Problem) -> dict[str, Any]:
    path = folder / DATASET_FILE
    if not path.exists():
        what = "a generated dataset" if (folder / "signature.json").exists() else "not an imported dataset"
        raise SibclError(f"{folder} is {what} (it has no {DATASET_FILE}): choose another --name")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"{path} is not valid JSON ({err.msg}): restore it from a backup; no split was touched") from None
    if meta.get("format") != FORMAT:
        raise SibclError(f"{path} is not a dataset record of this version ({meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("problem") != problem.name or meta.get("signature") != json.loads(json.dumps(problem.signature())):
        raise SibclError(f"dataset {folder.name!r} holds {meta.get('problem')} data {_options(meta.get('signature'))}: "
                         f"it does not fit --problem {problem.name} {_options(problem.signature())}")
    return meta


def _options(signature: Any) -> str:
    if not isinstance(signature, dict):
        return ""
    shown = {k: v for k, v in signature.items() if k not in ("problem", "label_settings", "label_version")}
    return "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f".{DATASET_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / DATASET_FILE)


def open_dataset(root: Path, name: str, problem: Problem) -> ImportedDataset:
    """An imported dataset's splits, every shard checked against its manifest (size and SHA-256)."""
    check_name(name, "--dataset")
    folder = Path(root).expanduser().absolute() / name
    if not folder.is_dir():
        raise SibclError(f"--dataset {name!r}: no dataset {folder}; make it with python -m sibcl_ray.import")
    meta = _read_meta(folder, problem)
    splits = {}
    for split, record in meta["splits"].items():
        split_dir = folder / split
        manifest = shards.read_manifest(split_dir)
        size, count = int(manifest.get("shard_size", 0)), int(record["count"])
        paths = []
        for i in range(shards.shards_needed(count, size) if size else 0):
            path = split_dir / shards.shard_name(i)
            rows = min(size, count - i * size)
            problem_with = shards.check_shard(path, manifest["shards"].get(path.name), i * size, rows,
                                              shards.SPLITS[split].labelled)
            if problem_with is not None or path.name not in manifest["shards"]:
                raise ShardError(f"imported shard {path} is {problem_with or 'not in its manifest'}: imported data is "
                                 f"never regenerated; restore {split_dir} from a backup or import it again under another --name")
            paths.append(path)
        splits[split] = (paths, count)
    return ImportedDataset(folder, splits)


def sized_preset(preset: Any, dataset: ImportedDataset, needed: set[str], budgets: tuple[int, ...]) -> Any:
    """``preset`` with each split the dataset holds at its imported size (used whole); every
    label budget must fit the imported labelled pool."""
    field = {"unlabeled": "n_unlabeled", "surrogate": "n_surrogate", "train": "n_train_pool", "val": "n_val",
             "test": "n_test"}
    sized = replace(preset, **{field[s]: n for s, (_, n) in dataset.splits.items() if s in needed})
    if "train" in dataset.splits and max(budgets) > sized.n_train_pool:
        raise SibclError(f"--nsam {max(budgets)} is more than the {sized.n_train_pool} labelled samples of split "
                         f"'train' of dataset {dataset.folder.name!r}: give --nsam at most {sized.n_train_pool}")
    return sized


def refuse_missing_splits(dataset: ImportedDataset, problem: Problem, needed: dict[str, list[str]]) -> None:
    """A split the dataset lacks is generated, unless the problem cannot generate: then one line.

    ``needed`` maps each split to the methods (or "the search") that need it, for the message."""
    missing = [s for s in needed if s not in dataset.splits]
    if missing and not problem.generates:
        split = missing[0]
        raise SibclError(f"dataset {dataset.folder.name!r} has no split {split!r}, which {' and '.join(needed[split])} "
                         f"needs, and --problem {problem.name} cannot generate data: import it "
                         f"(python -m sibcl_ray.import --split {split} …)")


def dataset_for_run(root: Path, name: str, problem: Problem, preset: Any, needed: dict[str, list[str]],
                    budgets: tuple[int, ...]) -> tuple[ImportedDataset, Any]:
    """``--dataset NAME`` of ``tune``/``benchmark``, checked before Ray starts: the dataset, and
    the preset sized by it. ``needed``: split → what needs it (named in a refusal); ``budgets``:
    the label budgets the run fine-tunes with."""
    dataset = open_dataset(root, name, problem)
    refuse_missing_splits(dataset, problem, needed)
    return dataset, sized_preset(preset, dataset, set(needed), budgets)
