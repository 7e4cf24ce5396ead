"""Ray orchestration of the label-efficiency benchmark: pretraining runs, then fine-tuning cells.

Each run is a Ray task (``train.runs.fit_run``). A one-worker run trains inside its task, which
holds the worker's CPUs (and GPU); with several workers per run the task is a driver that takes
a trial-driver slot (no CPU) and fits its own TorchTrainer, so Ray schedules the Train workers
of many runs side by side. A cell is submitted as soon as the pretraining of its method has
finished; Ray retries a task whose process died, and the run resumes from its last checkpoint.
An active-labelling method (``sibcl-al``, ``ssl-al``, ``tl-al``) shares its twin's pretraining; once that
has finished, one task picks and labels its inputs for every budget (``data.picks``)
and its cells fine-tune on those. A multi-fidelity method (``tl-mf``, ``sibcl-mf``) fine-tunes its
plain twin's pretrained encoder too (with a fresh predictor that also reads the cheap label);
``fit-mf`` trains nothing: the driver fits it in closed form (``fit_cell``). Every cell of a run
with a ``-mf`` method records its solver cost in target-label equivalents (``solver_cost``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from tqdm import tqdm

from sibcl_ray import storage
from sibcl_ray.benchmark.report import PRETRAINING_LOSSES, write_report
from sibcl_ray.data.datasets import split_dataset
from sibcl_ray.data.generate import prepare
from sibcl_ray.data.imported import ImportedDataset
from sibcl_ray.train.picks import select_and_label
from sibcl_ray.data.shards import read_split
from sibcl_ray.errors import SibclError
from sibcl_ray.learning.fidelity import CheapFit
from sibcl_ray.presets import Preset
from sibcl_ray.pictures import write_model_pictures
from sibcl_ray.predictor import export_model, model_info
from sibcl_ray.problems import get_problem
from sibcl_ray.provenance import provenance
from sibcl_ray.resources import run_resources, task_options
from sibcl_ray.train.checkpoints import load_state, readable_state, selected_weights
from sibcl_ray.train.methods import get_method
from sibcl_ray.train.runs import RunSpec, evaluate_in_task, finished_run_metrics, fit_run, trial_data


def _task_options(job: RunSpec) -> dict[str, Any]:
    """Ray task options of one run (``resources.run_resources``): its worker's CPUs and GPUs when
    it trains in place, else a run driver's slot; retried when its process dies, not when it raises."""
    held = run_resources(job.trains_in_place, job.cpus_per_worker, job.gpus_per_worker, ray.cluster_resources())
    return {"max_retries": 2, "retry_exceptions": False, **task_options(held)}


def _resolved(datasets: dict[str, Any]) -> dict[str, Any]:
    """A run's splits with the object-store references among them fetched (arrays, zero-copy)."""
    return {split: ray.get(d) if isinstance(d, ray.ObjectRef) else d for split, d in datasets.items()}


def _pretrain(job: RunSpec, hparams: dict[str, Any], name: str, datasets: dict[str, Any]) -> list[tuple[int, str]]:
    """Pretrain once; returns (epoch, checkpoint folder) of the encoder after each of the job's
    ``keep_epochs``, which the cells fine-tune from."""
    run_dir = f"{job.storage_path}/{name}"
    if finished_run_metrics(run_dir, job.total_epochs) is None:
        fit_run(job, hparams, name, datasets=_resolved(datasets))
    by_epoch = {}
    for folder in storage.list_dirs(run_dir, "checkpoint_"):  # Train numbers them by report, TaskRun by epoch
        state = readable_state(folder)
        if state is not None:
            by_epoch[int(state["epochs_done"])] = folder
    missing = [e for e in job.keep_epochs if e not in by_epoch]
    if missing:
        raise SibclError(f"pretraining run {run_dir} kept no checkpoint after epoch {missing[0]}: it was made by "
                         "another bench_checkpoints setting; use another --output")
    return [(e, by_epoch[e]) for e in job.keep_epochs]


def pretraining_run_name(method: str, seed: int, keep_epochs: tuple[int, ...]) -> str:
    """The run a method's pretraining is kept under (``-ckpts`` when cells fine-tune from several
    of its checkpoints, so a benchmark made with one checkpoint is never resumed as another)."""
    return f"pretrain-{method}-s{seed}" + ("" if len(keep_epochs) == 1 else "-ckpts")


def pretraining_histories(storage_path: str, methods: list[str], seed: int,
                          keep_epochs: tuple[int, ...]) -> dict[str, list[dict[str, Any]]]:
    """Each pretraining run's per-epoch losses (its last readable checkpoint's ``history``),
    also for runs an earlier invocation finished."""
    out = {}
    for method in methods:
        folders = reversed(storage.list_dirs(f"{storage_path}/{pretraining_run_name(method, seed, keep_epochs)}",
                                             "checkpoint_"))
        last = next((s for s in map(readable_state, folders) if s is not None), None)  # the newest readable
        if last is not None and last.get("history"):
            out[method] = [{k: v for k, v in h.items() if k in ("epochs_done", *PRETRAINING_LOSSES)}
                           for h in last["history"]]
    return out


@dataclass(frozen=True)
class Try:
    """One fine-tuning run of a cell: from a pretraining checkpoint, or (a method that does not
    pretrain) from a random initialisation of its own seed."""

    name: str
    seed: int
    init_state: str | None = None
    from_epoch: int | None = None


def cell_tries(cell: Any, pretrained: list[tuple[int, str]] | None, count: int) -> list[Try]:
    """The fine-tuning runs of one cell, ``count`` of them whatever the method (the budget is the
    same for all): one per pretraining checkpoint, or ``count`` initial seeds. A single try keeps
    the run name cells always had, so benchmarks made before resume."""
    base = f"finetune-{cell.name}"
    if pretrained is not None:
        return [Try(base if len(pretrained) == 1 else f"{base}-from{epoch}", cell.seed, folder, epoch)
                for epoch, folder in pretrained]
    return [Try(base if count == 1 else f"{base}-init{k}", cell.seed + 1000 * k) for k in range(count)]


def _finetune_and_test(job: RunSpec, hparams: dict[str, Any], tries: list[Try], model_size: str,
                       test_paths: list[Path], n_test: int, datasets: dict[str, Any],
                       val: tuple[list[Path], int] | None = None) -> dict[str, Any]:
    """Fine-tune every try, keep the one with the lowest validation error (its own best epoch,
    selection on validation only) and evaluate that one on test, once; with ``val`` (paths,
    count) the evaluation's arrays come back for the exported pictures."""
    done: list[dict[str, Any]] = []
    for attempt in tries:
        run = replace(job, seed=attempt.seed, init_state=attempt.init_state)
        finished = finished_run_metrics(f"{job.storage_path}/{attempt.name}", run.total_epochs)
        if finished is not None:
            checkpoint, val_error = finished["checkpoint_path"], finished["val_error"]
        else:
            result = fit_run(run, hparams, attempt.name, datasets=_resolved(datasets))
            if result.metrics.get("stopped_reason"):
                return {"stopped_reason": result.metrics["stopped_reason"], "checkpoint": result.checkpoint}
            checkpoint, val_error = result.checkpoint, result.metrics["val_error"]
        done.append({"from_epoch": attempt.from_epoch, "seed": attempt.seed, "val_error": float(val_error),
                     "checkpoint": checkpoint})
    best = min(range(len(done)), key=lambda i: done[i]["val_error"])
    kept_history = load_state(done[best]["checkpoint"]).get("history", [])
    test = evaluate_in_task(job.problem, job.problem_options, model_size, done[best]["checkpoint"], test_paths, n_test,
                            use_gpu=bool(job.gpus_per_worker), val_paths=val[0] if val else None,
                            n_val=val[1] if val else 0, keep_arrays=val is not None)
    out = {"val_error": done[best]["val_error"], **test, "checkpoint": done[best]["checkpoint"],
           # whether fine-tuning was long enough: the kept run's best validation error after each epoch
           "finetune_val_curve": [h["val_error"] for h in kept_history if "finetune_loss" in h]}
    if len(done) > 1:
        out.update(tries=done, selected_try=best)
    return out


def fit_cell(problem: Any, train: dict[str, np.ndarray], val: dict[str, np.ndarray],
             test: dict[str, np.ndarray]) -> dict[str, Any]:
    """``fit-mf``: the closed-form fit of the label on the cheap label, made on the labelled
    training samples only, scored on validation and test like a trained cell."""
    fit = CheapFit.fit(train["c"], train["y"])
    errors = problem.errors(fit.predict(test["c"]).astype(np.float32), test["y"])
    return {"val_error": float(np.mean(problem.errors(fit.predict(val["c"]).astype(np.float32), val["y"]))),
            "test_error": float(np.mean(errors)), "test_error_std": float(np.std(errors)), "n_test": int(len(errors)),
            "fit": fit.to_dict()}


def measure_solver_costs(problem: Any, x: np.ndarray, seed: int) -> dict[str, float]:
    """Seconds per input of the target solver, the cheap solver and the surrogate labels, timed
    here on ``x`` (a few validation inputs, fastest of three passes; the first two inputs only warm the
    solvers up), and the two
    cheap ones as fractions of the target. A surrogate label's cost is ``surrogate_samples`` less
    drawing as many target inputs: the solve, not the input generator, which every method pays."""
    def per_input(call: Callable[[], Any]) -> float:  # the fastest of three: the machine may be shared
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        return best / len(timed)

    problem.target_labels(x[:2]), problem.cheap_labels(x[:2])
    timed = x[2:]
    target = per_input(lambda: problem.target_labels(timed))
    cheap = per_input(lambda: problem.cheap_labels(timed))
    rng = np.random.default_rng(seed)
    surrogate = max(0.0, per_input(lambda: problem.surrogate_samples(rng, len(timed)))
                    - per_input(lambda: problem.target_inputs(rng, len(timed))))
    return {"target_s": target, "cheap_s": cheap, "surrogate_s": surrogate,
            "cheap_ratio": cheap / target, "surrogate_ratio": surrogate / target}


def solver_cost(method: str, nsam: int, n_test: int, n_surrogate: int, costs: dict[str, float]) -> dict[str, Any]:
    """A cell's solver cost in target-label equivalents: its ``nsam`` target labels, the cheap labels of
    its training and test inputs (a ``-mf`` method), the surrogate set (a method that pretrains on it)."""
    m = get_method(method)
    cheap = nsam + n_test if m.multifidelity else 0
    surrogate = n_surrogate if m.surrogate_supervised or m.contrastive_surrogate else 0
    return {"target": nsam, "cheap": cheap, "surrogate": surrogate, "cheap_ratio": costs["cheap_ratio"],
            "surrogate_ratio": costs["surrogate_ratio"],
            "total": nsam + cheap * costs["cheap_ratio"] + surrogate * costs["surrogate_ratio"]}


def export_cell(record: dict[str, Any], folder: Path, problem: str, problem_options: dict[str, Any], preset: Preset,
                arrays: dict[str, Any] | None, test_paths: list[Path], val_paths: list[Path]) -> Path:
    """A finished cell's model folder: weights, ``model.json`` and its two pictures.

    A cell finished by an earlier run without ``--export`` has no arrays; its selected model
    is evaluated again (one pass over test and validation) to draw them.
    """
    if arrays is None:
        arrays = evaluate_in_task(problem, problem_options, preset.model_size, record["checkpoint"], test_paths,
                                  preset.n_test, use_gpu=False, val_paths=val_paths, n_val=preset.n_val,
                                  keep_arrays=True)["arrays"]
    state = load_state(record["checkpoint"])
    info = model_info(problem_name=problem, problem_options=problem_options, model_size=preset.model_size,
                      method=record["method"], hparams=state["config"]["hparams"], metrics=record,
                      nsam=record["nsam"], seed=record["seed"])
    export_model(folder, selected_weights(state), info)
    write_model_pictures(get_problem(problem, **problem_options), arrays, folder,
                         f"{record['method']}, {record['nsam']} labels, seed {record['seed']}")
    return folder


def run_benchmark(*, problem: str, problem_options: dict[str, Any], preset: Preset, cells: list[Any],
                  hparams: dict[str, Any], output: Path, data_root: Path, seed: int, max_concurrent: int,
                  workers: int, cpus_per_worker: float, gpus_per_worker: float,
                  export: bool = False, dataset: ImportedDataset | None = None,
                  selection: str = "typiclust") -> dict[str, Any]:
    """Run (or finish) every cell and write results.json, results.md and the plot; with
    ``export`` also every cell's model folder in ``<output>/models/<cell>``. Active-labelling
    cells pick their labels by ``selection`` (a ``learning.selection`` strategy)."""
    start = time.perf_counter()
    methods = sorted({c.method for c in cells})
    pretraining = sorted({get_method(m).pretraining for m in methods if get_method(m).pretrains})
    sizes = preset.split_counts()
    # pretraining runs read no labelled pool (benchmark.run pretrains with no fine-tuning epochs)
    needed = {"val", "test"} | {s for m in pretraining for s in get_method(m).needs() if s != "train"}
    if any(get_method(m).selects for m in methods):  # the pool a pick chooses from, pretrained on or not (tl-al)
        needed.add("unlabeled")
    # the labelled pool is drawn at random: as large as the largest budget of a method that does not
    # pick its labels, and not labelled at all when every method picks
    drawn = {c.nsam for c in cells if not get_method(c.method).selects}
    counts = {s: n for s, n in sizes.items() if s in needed} | ({"train": max(drawn)} if drawn else {})
    multifidelity = any(get_method(m).multifidelity for m in methods) or bool(hparams.get("multifidelity"))
    data = prepare(problem, problem_options, counts, data_root, seed, preset.shard_size, dataset, cheap=multifidelity)
    the_problem = get_problem(problem, **problem_options)
    costs = measure_solver_costs(the_problem, read_split(data.paths["val"], 10)["x"], seed) if multifidelity else None
    base = RunSpec(
        problem=problem, problem_options=problem_options, method="sl", model_size=preset.model_size,
        pretrain_epochs=preset.pretrain_epochs, finetune_epochs=preset.finetune_epochs, nsam=counts.get("train", 0),
        seed=seed, splits={s: ([str(p) for p in ps], data.counts[s]) for s, ps in data.paths.items()},
        storage_path=str(output / "train"), experiment="benchmark", pretrain_steps=preset.contrastive_steps(),
        surrogate_steps=preset.surrogate_supervised_steps(), num_workers=workers,
        cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, fixed_hparams=hparams,
    )
    cell_dir = output / "cells"
    finished = {c.name: json.loads((cell_dir / f"{c.name}.json").read_text()) for c in cells
                if (cell_dir / f"{c.name}.json").exists()}
    todo = [c for c in cells if c.name not in finished]
    # every split read once into the object store; the labelled pool once per label budget
    # (arrays put in the object store once when runs train in place, Ray Data blocks otherwise)
    shared = trial_data(base, tuple(s for s in base.splits if s not in ("test", "train")))
    train_sets = {n: trial_data(replace(base, nsam=n), ("train",))["train"] for n in sorted(drawn)}
    if base.trains_in_place:
        shared = {split: ray.put(arrays) for split, arrays in shared.items()}
        train_sets = {n: ray.put(arrays) for n, arrays in train_sets.items()}
    options = _task_options(base)
    pretrain_task = ray.remote(_pretrain).options(**options)
    cell_task = ray.remote(_finetune_and_test).options(**options)

    bar = tqdm(total=len(cells), initial=len(finished), unit="cell", desc=f"benchmark {problem}")
    # Pretraining runs first, then cells as their encoders become ready; at most max_concurrent
    # Train runs exist at once (each holds a driver task and a Train controller while it waits).
    select_task = ray.remote(select_and_label).options(num_cpus=1, max_retries=2, retry_exceptions=False)
    pretrained_by: dict[str, list[tuple[int, str]]] = {}
    picked: dict[tuple[str, int], dict[str, Any]] = {}  # (method, nsam) → its pick of labelled inputs
    queue: list[tuple[str, Any]] = [("pretrain", m) for m in pretraining
                                    if any(get_method(c.method).pretraining == m for c in todo)]
    queue += [("cell", (c, None)) for c in todo if not get_method(c.method).pretrains and get_method(c.method).network]
    fitted = [c for c in todo if not get_method(c.method).network]
    if fitted:  # fit-mf: closed form in the driver, on the same labelled draw as the networks'
        held = {s: read_split(data.paths[s], data.counts[s]) for s in ("val", "test")}
        for cell in fitted:
            train = read_split(data.paths["train"], cell.nsam)
            record = {"method": cell.method, "nsam": cell.nsam, "seed": cell.seed,
                      **fit_cell(the_problem, train, held["val"], held["test"])}
            if costs is not None:
                record["solver_cost"] = solver_cost(cell.method, cell.nsam, preset.n_test, preset.n_surrogate, costs)
            (cell_dir / f"{cell.name}.json").write_text(json.dumps(record, indent=1))
            finished[cell.name] = record
            bar.update(1)
    pending: dict[Any, tuple[str, Any]] = {}
    while queue or pending:
        while queue and len(pending) < max_concurrent:
            kind, what = queue.pop(0)
            if kind == "pretrain":
                job = replace(base, method=what, finetune_epochs=0, nsam=0, keep_epochs=preset.checkpoint_epochs())
                name = pretraining_run_name(what, seed, job.keep_epochs)
                pending[pretrain_task.remote(job, {}, name, shared)] = (kind, what)
            elif kind == "select":
                budgets = tuple(sorted({c.nsam for c in todo if c.method == what}))
                checkpoint = pretrained_by[get_method(what).pretraining][-1][1]  # the encoder at the end
                ref = select_task.remote(problem, problem_options, preset.model_size, checkpoint,
                                         [str(p) for p in data.paths["unlabeled"]], data.counts["unlabeled"],
                                         selection, budgets, seed, str(output / "selected" / f"{what}-s{seed}"),
                                         preset.shard_size)
                pending[ref] = (kind, what)
            else:
                cell, pretrained = what
                job = replace(base, method=cell.method, nsam=cell.nsam, seed=cell.seed, pretrain_epochs=0)
                tries = cell_tries(cell, pretrained, len(preset.checkpoint_epochs()))
                train = picked[cell.method, cell.nsam]["arrays"] if get_method(cell.method).selects \
                    else train_sets[cell.nsam]
                ref = cell_task.remote(job, {}, tries, preset.model_size, data.paths["test"],
                                       preset.n_test, {**shared, "train": train},
                                       (data.paths["val"], preset.n_val) if export else None)
                pending[ref] = (kind, cell)
        ready, _ = ray.wait(list(pending), num_returns=1)
        kind, what = pending.pop(ready[0])
        value = ray.get(ready[0])
        if kind == "pretrain":
            tqdm.write(f"pretrained {what}: {value[-1][1]}" + (f" (and epochs {', '.join(str(e) for e, _ in value[:-1])})"
                                                             if len(value) > 1 else ""))
            pretrained_by[what] = value
            mine = [c for c in todo if get_method(c.method).pretraining == what]
            # picks first: their label tasks then run beside the random-labelling cells
            queue[:0] = [("select", m) for m in sorted({c.method for c in mine if get_method(c.method).selects})]
            queue += [("cell", (c, value)) for c in mine if not get_method(c.method).selects]
            continue
        if kind == "select":
            solved = sum(p["labels_solved"] for p in value.values())
            tqdm.write(f"{what}: picked {', '.join(str(n) for n in value)} inputs by {selection}, solved {solved} labels")
            for nsam, pick in value.items():  # shared by the budget's seeds, as train_sets are
                path = [Path(pick["path"])]
                arrays = ray.put(read_split(path, nsam)) if base.trains_in_place else split_dataset(path, nsam)
                picked[what, nsam] = {**pick, "arrays": arrays}
            pretrained = pretrained_by[get_method(what).pretraining]
            queue += [("cell", (c, pretrained)) for c in todo if c.method == what]
            continue
        arrays = value.pop("arrays", None)
        record = {"method": what.method, "nsam": what.nsam, "seed": what.seed, **value}
        if costs is not None:
            record["solver_cost"] = solver_cost(what.method, what.nsam, preset.n_test, preset.n_surrogate, costs)
        if get_method(what.method).selects:
            pick = picked[what.method, what.nsam]
            record["selection"] = {"strategy": pick["strategy"], "labels": pick["path"],
                                   "labels_solved": pick["labels_solved"]}
        if export and "stopped_reason" not in value:
            export_cell(record, output / "models" / what.name, problem, problem_options, preset, arrays,
                        data.paths["test"], data.paths["val"])
        tmp = cell_dir / f".{what.name}.json.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, cell_dir / f"{what.name}.json")
        finished[what.name] = record
        bar.update(1)
        if "stopped_reason" in value:
            tqdm.write(f"{what.name} stopped: {value['stopped_reason']}")
        else:
            bar.set_postfix_str(f"{what.name}: test {value['test_error']:.4f}")
    bar.close()
    if export:  # cells an earlier run finished without --export
        for name, record in finished.items():
            if "stopped_reason" not in record and get_method(record["method"]).network \
                    and not (output / "models" / name / "model.json").exists():
                export_cell(record, output / "models" / name, problem, problem_options, preset, None,
                            data.paths["test"], data.paths["val"])

    title = f"{problem} ({preset.name}): test error vs labels"
    good = [c for c in finished.values() if "stopped_reason" not in c]
    if costs is not None:  # one measurement prices every cell, those an earlier invocation finished too
        good = [{**c, "solver_cost": solver_cost(c["method"], c["nsam"], preset.n_test, preset.n_surrogate, costs)}
                for c in good]
    if not good:
        raise SibclError("every benchmark cell stopped on a non-finite loss; see " + str(cell_dir))
    extra = provenance(seed) | ({"models": str(output / "models")} if export else {})
    histories = pretraining_histories(base.storage_path, pretraining, seed, preset.checkpoint_epochs())
    results = write_report(good, output, title, extra, histories)
    results["stopped_cells"] = [c for c in finished.values() if "stopped_reason" in c]
    results["wall_s"] = time.perf_counter() - start
    return results
