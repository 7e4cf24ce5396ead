"""Active labelling: pick the inputs to label by embedding, solve them with Ray tasks.

A ``sibcl-al`` (or ``ssl-al``, ``tl-al``) benchmark cell, or a search run with ``--select``, fine-tunes on
``nsam`` inputs picked from the *unlabeled* pool — inputs without labels (contrastive pretraining's split), never
validation or test — by a pretrained encoder's embeddings (``learning.selection``), labelled on
demand by the problem's own solver in Ray tasks, one per ``shard_size`` inputs. Nothing of the
pool's labels is used to pick.

The benchmark makes one pick per (method, budget), shared by that budget's seeds, as the
random-labelling cells of ``sibcl`` share the first ``nsam`` of the labelled pool: the seeds then
measure the same thing (fine-tuning noise) for both; a search makes one pick for all its trials.
Picks are kept, with their labels, in ``<folder>/n<nsam>/`` (``labels.parquet`` and
``selection.json``: the strategy, the encoder checkpoint, the pool indices, the file's checksum),
so a resumed run reuses them; an input picked at several budgets or by both methods is solved once.

Example (what ``benchmark.run`` does once ``sibcl``'s pretraining has finished)::

    picks = ray.get(select_task.remote("phc", {}, "small", checkpoint, unlabeled_paths, 2000,
                                       "typiclust", (50, 100), 0, str(output / "selected" / "sibcl-al-s0"), 100))
    picks[50]["path"]   # labels.parquet of the 50 inputs picked
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import ray

from sibcl_ray.data import shards
from sibcl_ray.errors import SibclError
from sibcl_ray.learning.selection import select
from sibcl_ray.predictor import build_predictor
from sibcl_ray.problems import get_problem
from sibcl_ray.train.checkpoints import load_state, selected_weights

SELECTION_FILE = "selection.json"
LABELS_FILE = "labels.parquet"


@ray.remote(max_retries=3, retry_exceptions=False)
def _solve(problem_name: str, problem_options: dict[str, Any], inputs: np.ndarray) -> np.ndarray:
    """The problem's expensive labels of ``inputs`` (one label task, as in generation)."""
    labels = get_problem(problem_name, **problem_options).target_labels(inputs)
    if not np.all(np.isfinite(labels)):
        raise FloatingPointError("non-finite label from the solver")
    return np.asarray(labels, dtype=np.float32)


def pool_features(problem_name: str, problem_options: dict[str, Any], model_size: str, checkpoint: str,
                  inputs: np.ndarray) -> np.ndarray:
    """The encoder representation of every pool input, from a pretraining checkpoint."""
    spec = get_problem(problem_name, **problem_options).network_spec(model_size)
    predictor = build_predictor(problem_name, problem_options, spec, selected_weights(load_state(checkpoint)))
    return predictor.features(inputs)


def read_selection(folder: Path) -> dict[str, Any] | None:
    """A finished pick (its ``selection.json`` with ``path``), or None when absent or its file
    does not match the checksum recorded with it (a pick cut short is made again)."""
    record_path, labels = folder / SELECTION_FILE, folder / LABELS_FILE
    if not record_path.exists() or not labels.exists():
        return None
    record = json.loads(record_path.read_text())
    if shards.manifest_entry(labels, 0, len(record["indices"]))["sha256"] != record["sha256"]:
        return None
    return {**record, "path": str(labels)}


def _known_labels(root: Path) -> dict[int, np.ndarray]:
    """Pool index → label of every input an earlier pick of this benchmark already solved."""
    known: dict[int, np.ndarray] = {}
    for record_path in sorted(root.glob(f"*/n*/{SELECTION_FILE}")):
        done = read_selection(record_path.parent)
        if done is not None:
            labels = shards.read_split([Path(done["path"])], len(done["indices"]))["y"]
            known.update(zip(done["indices"], labels))
    return known


def select_and_label(problem_name: str, problem_options: dict[str, Any], model_size: str, checkpoint: str,
                     pool_paths: list[str], pool_count: int, strategy: str, budgets: tuple[int, ...], seed: int,
                     folder: str, chunk: int) -> dict[int, dict[str, Any]]:
    """Pick ``budget`` pool inputs for every budget (reusing finished picks), solve the labels not
    known yet in Ray tasks of ``chunk`` inputs, write each pick; returns budget → its record.

    Runs as a Ray task: it holds one CPU to embed the pool and pick, and Ray lends that CPU to
    the label tasks while it waits for them. A pick an earlier run finished comes back with
    ``reused`` set (its ``labels_solved`` were solved then)."""
    out_dir = Path(folder)
    pool: dict[str, np.ndarray] | None = None
    features: np.ndarray | None = None
    known = _known_labels(out_dir.parent)
    picks: dict[int, dict[str, Any]] = {}
    for budget in sorted(budgets):
        where = out_dir / f"n{budget}"
        done = read_selection(where)
        if done is not None:
            if done["strategy"] != strategy or done["checkpoint"] != checkpoint:
                raise SibclError(f"{where} holds a {done['strategy']} pick from {done['checkpoint']}; this benchmark "
                                 f"picks by {strategy} from {checkpoint}: use another --output")
            picks[budget] = {**done, "reused": True}
            continue
        if pool is None:
            pool = shards.read_split([Path(p) for p in pool_paths], pool_count)
            features = pool_features(problem_name, problem_options, model_size, checkpoint, pool["x"])
        indices = [int(i) for i in select(strategy, features, budget, seed)]
        missing = [i for i in indices if i not in known]
        parts = [missing[k : k + chunk] for k in range(0, len(missing), chunk)]
        for part, labels in zip(parts, ray.get([_solve.remote(problem_name, problem_options, pool["x"][p])
                                                for p in parts])):
            known.update(zip(part, labels))
        where.mkdir(parents=True, exist_ok=True)
        entry = shards.write_shard(where / LABELS_FILE, 0, pool["x"][indices], np.stack([known[i] for i in indices]))
        record = {"strategy": strategy, "seed": seed, "checkpoint": checkpoint, "pool": "unlabeled",
                  "pool_count": pool_count, "indices": indices, "pool_index": pool["index"][indices].tolist(),
                  "labels_solved": len(missing), "sha256": entry["sha256"]}
        (where / SELECTION_FILE).write_text(json.dumps(record, indent=1))
        picks[budget] = {**record, "path": str(where / LABELS_FILE)}
    return picks
