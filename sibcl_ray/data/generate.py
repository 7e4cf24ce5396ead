"""Resumable label generation with Ray remote tasks, one task per Parquet shard.

A task computes a whole shard (~100 samples): docs/ray.md measured one task per sample at
~20× the overhead. Tasks are retried when their worker dies, not when they raise: a shard's
labels are a function of its seed, so an exception (a non-finite label, a full or read-only
disk) would only come back after the same solves again. The first failure stops the run with
one line that names the shard and the cause; the shards finished before it stay recorded
and a rerun computes only the rest (a file is written to a temporary name and renamed, so
a failed write leaves no half shard). The driver records
each finished shard in the split's manifest at once, so a killed run loses at most the
shards in flight. A shard that exists and checks out is never recomputed; a shard that
exists but is corrupt is refused (named in the error) unless ``repair`` is set, in which
case it is moved aside as ``*.corrupt`` and regenerated — data is never silently replaced.

With ``cheap`` (a run of a multi-fidelity method, for a problem with a cheap label) the labelled
target splits carry each input's cheap label as column ``c``: new shards are written with it, and
a shard made before gains it in a task of its own that reads its inputs, runs the cheap solver
and rewrites the file with every other column as it was (``shards.add_cheap_column``).
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import ray
from tqdm import tqdm

from sibcl_ray.data import shards
from sibcl_ray.data.imported import ImportedDataset, add_cheap_labels
from sibcl_ray.errors import ShardError, SibclError
from sibcl_ray.monitoring import record_labels
from sibcl_ray.problems import get_problem


@dataclass
class GenerationReport:
    """What a generation run did: shard paths per split and how many labels it computed."""

    root: Path
    paths: dict[str, list[Path]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    samples_computed: dict[str, int] = field(default_factory=dict)
    #: Samples of shards made before that were given their cheap-label column, per split.
    cheap_added: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: The imported dataset (``--dataset``) that the splits not generated in ``root`` come from.
    imported: Path | None = None

    @property
    def samples_per_second(self) -> float:
        total = sum(self.samples_computed.values())
        return total / self.seconds if self.seconds > 0 and total else 0.0


@ray.remote(max_retries=3, retry_exceptions=False)
def _make_shard(problem_name: str, problem_options: dict[str, Any], split_name: str, index: int,
                shard_size: int, seed: int, path: str, cheap: bool = False) -> dict[str, Any]:
    """Generate and write shard ``index`` of a split (with ``cheap``, its cheap labels too);
    returns its manifest entry."""
    problem = get_problem(problem_name, **problem_options)
    split = shards.SPLITS[split_name]
    rng = np.random.default_rng(shards.shard_seed(seed, split_name, index))
    if split.source == "surrogate":
        x, y = problem.surrogate_samples(rng, shard_size)
    else:
        x = problem.target_inputs(rng, shard_size)
        y = problem.target_labels(x) if split.labelled else None
    if y is not None and not np.all(np.isfinite(y)):
        raise FloatingPointError(f"non-finite label in {path}")
    return shards.write_shard(Path(path), index * shard_size, x, y, _cheap_labels(problem, x, path) if cheap else None)


@ray.remote(max_retries=3, retry_exceptions=False)
def _add_cheap(problem_name: str, problem_options: dict[str, Any], first_index: int, path: str) -> dict[str, Any]:
    """Give an existing shard its cheap-label column: its inputs are read back, nothing else is solved."""
    problem = get_problem(problem_name, **problem_options)
    x = shards.read_split([Path(path)], 1 << 62)["x"]
    return shards.add_cheap_column(Path(path), first_index, _cheap_labels(problem, x, path))


def _cheap_labels(problem: Any, x: np.ndarray, path: str) -> np.ndarray:
    c = problem.cheap_labels(x)
    if not np.all(np.isfinite(c)):
        raise FloatingPointError(f"non-finite cheap label in {path}")
    return c


def wants_cheap(split: str, cheap: bool) -> bool:
    """Whether a split carries the cheap labels when a run asks for them: the labelled target
    splits (what Δ-learning fits, selects on and is tested on)."""
    spec = shards.SPLITS[split]
    return cheap and spec.source == "target" and spec.labelled


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold a lock on a dataset so two runs never generate the same shards at once."""
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another generation run holding {folder}/.lock …", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def generate(problem_name: str, problem_options: dict[str, Any], counts: dict[str, int], root: Path,
             seed: int, shard_size: int, repair: bool = False, progress: bool = True,
             cheap: bool = False) -> GenerationReport:
    """Make sure the first ``counts[split]`` samples of every split exist on disk (with ``cheap``,
    the labelled target splits with their cheap labels)."""
    unknown = sorted(set(counts) - set(shards.SPLITS))
    if unknown:
        raise SibclError(f"unknown split {unknown[0]!r}: allowed values are {', '.join(shards.SPLITS)}")
    problem = get_problem(problem_name, **problem_options)
    try:
        folder = shards.dataset_dir(root, problem.signature(), seed)
        report = GenerationReport(root=folder, counts=dict(counts))
        start = time.perf_counter()
        with _exclusive(folder):
            sizes = {name: _shard_size(folder / name, shard_size) for name in counts}
            todo = _plan(folder, counts, sizes, repair, cheap)
            _run(todo, problem_name, problem_options, folder, sizes, seed, report, progress, cheap)
    except OSError as err:  # the lock, a folder or a manifest could not be written: nothing was lost
        raise ShardError(f"cannot write to the data dir {root}: {_describe(err)}; no shard was changed") from None
    report.seconds = time.perf_counter() - start
    for name, count in counts.items():
        report.paths[name] = shards.verified_shards(folder / name, count, sizes[name], shards.SPLITS[name].labelled,
                                                    wants_cheap(name, cheap))
    return report


def _shard_size(split_dir: Path, requested: int) -> int:
    """The split's own shard size (kept from the run that created it), recorded in its manifest."""
    split_dir.mkdir(exist_ok=True)
    size = shards.split_shard_size(split_dir, requested)
    manifest = shards.read_manifest(split_dir)
    if manifest.get("shard_size") != size:
        shards.write_manifest(split_dir, {**manifest, "shard_size": size})
    return size


def _plan(folder: Path, counts: dict[str, int], sizes: dict[str, int], repair: bool,
          cheap: bool = False) -> list[tuple[str, int, str]]:
    """The (split, shard index, 'make' or 'cheap') work still to do; vets every existing shard.
    'cheap' is a good shard that lacks the cheap labels a run asks for."""
    todo = []
    for name, count in counts.items():
        split_dir = folder / name
        shard_size = sizes[name]
        manifest = shards.read_manifest(split_dir)
        adopted = False
        for i in range(shards.shards_needed(count, shard_size)):
            path = split_dir / shards.shard_name(i)
            entry = manifest["shards"].get(path.name)
            problem = shards.check_shard(path, entry, i * shard_size, shard_size, shards.SPLITS[name].labelled)
            if problem is None:
                if entry is None:  # written by a run killed before it could record it
                    manifest["shards"][path.name] = shards.manifest_entry(path, i * shard_size, shard_size)
                    adopted = True
                if wants_cheap(name, cheap) and not shards.has_cheap(path, manifest["shards"][path.name]):
                    todo.append((name, i, "cheap"))
                continue
            if problem.startswith("manifest says"):  # the file may be fine: never advise replacing it
                raise ShardError(f"shard {path}: {problem}; {split_dir / shards.MANIFEST} disagrees with the "
                                 "split's shard size (edited by hand?); no shard was touched")
            if problem != "missing":
                if not repair:
                    raise ShardError(f"shard {path} is {problem}: rerun with --repair to regenerate it")
                os.replace(path, path.with_suffix(".parquet.corrupt"))
                manifest["shards"].pop(path.name, None)
                adopted = True
            todo.append((name, i, "make"))
        if adopted:
            shards.write_manifest(split_dir, manifest)
    return todo


def _describe(err: BaseException) -> str:
    """The cause of a failed shard in a few words: the OS's own message for a file error."""
    text = (err.strerror if isinstance(err, OSError) and err.strerror else str(err)).splitlines()
    return (text[0] if text else type(err).__name__) + (f" ({err.filename})" if getattr(err, "filename", None) else "")


def _run(todo: list[tuple[str, int, str]], problem_name: str, problem_options: dict[str, Any], folder: Path,
         sizes: dict[str, int], seed: int, report: GenerationReport, progress: bool, cheap: bool = False) -> None:
    if not todo:
        return
    pending = {
        (_make_shard.remote(problem_name, problem_options, name, i, sizes[name], seed,
                            str(folder / name / shards.shard_name(i)), wants_cheap(name, cheap)) if kind == "make"
         else _add_cheap.remote(problem_name, problem_options, i * sizes[name], str(folder / name / shards.shard_name(i)))):
        (name, i, kind)
        for name, i, kind in todo
    }
    manifests = {name: shards.read_manifest(folder / name) for name in {n for n, _, _ in todo}}
    bar = tqdm(total=sum(sizes[name] for name, _, _ in todo), unit="sample", desc=f"labels {problem_name}",
               disable=not progress)
    start = time.perf_counter()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name, i, kind = pending.pop(done[0])
        path = folder / name / shards.shard_name(i)
        try:
            entry = ray.get(done[0])
            manifests[name]["shards"][shards.shard_name(i)] = entry
            shards.write_manifest(folder / name, manifests[name])
        except (OSError, FloatingPointError) as err:
            bar.close()  # so that the error line starts a line of its own
            for ref in pending:
                ray.cancel(ref)
            cause = getattr(err, "cause", None) or err  # a task's exception arrives wrapped in RayTaskError
            recorded = sum(len(m["shards"]) for m in manifests.values())
            raise ShardError(f"stopped at shard {path}: {_describe(cause)}; the {recorded} shards recorded "
                             f"in the manifests of {folder} are kept: fix the cause and rerun the same command, only "
                             "the missing shards are computed") from None
        if kind == "cheap":
            report.cheap_added[name] = report.cheap_added.get(name, 0) + entry["rows"]
            bar.update(entry["rows"])
            continue
        report.samples_computed[name] = report.samples_computed.get(name, 0) + entry["rows"]
        record_labels(problem_name, name, entry["rows"], time.perf_counter() - start)
        bar.update(entry["rows"])
    bar.close()


def prepare(problem_name: str, problem_options: dict[str, Any], counts: dict[str, int], root: Path, seed: int,
            shard_size: int, dataset: ImportedDataset | None = None, cheap: bool = False) -> GenerationReport:
    """The splits a run reads: an imported dataset's own splits (whole, ``data.imported``) and
    the rest generated (or reused) as ``generate`` does. ``counts`` should already carry the
    imported sizes (``imported.sized_preset``)."""
    own = {} if dataset is None else {s: dataset.splits[s] for s in counts if s in dataset.splits}
    rest = {s: n for s, n in counts.items() if s not in own}
    report = (generate(problem_name, problem_options, rest, root, seed, shard_size, cheap=cheap) if rest
              else GenerationReport(root=root))
    if dataset is not None:
        report.imported = dataset.folder
    for split, (paths, count) in own.items():
        if wants_cheap(split, cheap):  # a split imported before the cheap column existed gains it
            report.cheap_added[split] = len(add_cheap_labels(dataset, get_problem(problem_name, **problem_options), split))
        report.paths[split], report.counts[split] = list(paths), count
    return report
