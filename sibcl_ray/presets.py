"""Run sizes: ``smoke`` (tests), ``quick`` (the laptop default), ``curve`` (the whole
label-efficiency curve on a laptop, a few hours) and ``paper`` (the reference's).

A preset fixes data sizes, epochs, model size and the trial budget; the searched knobs
(temperature, augmentation strength, mixing ratio, learning rates, batch size) come from
the search space. ``quick`` takes about 4 minutes on two CPU cores for phc, label
generation included (BENCHMARKS.md, "The main job"), and ``smoke`` under one.

A pretraining epoch is a fixed number of optimizer steps (``pretrain_steps`` contrastive
and ``surrogate_steps`` supervised surrogate steps), not a pass over the unlabeled set:
a pass would give a trial with a large batch a fraction of the steps of one with a small
batch, and the searched batch size would silently set the pretraining budget. The
defaults are the steps of one pass at the reference settings (batch 96, a third of it
surrogate: 64 target inputs a step; 96 surrogate samples a supervised step).

The validation split is the search's judge: at ``quick`` it is 500 labels (about 25 s of
solver time on two cores), since on 100 samples the winner's validation error was a
noisy, optimistic estimate of its test error.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sibcl_ray.errors import SibclError


#: Target inputs per contrastive step and samples per surrogate step at the reference
#: settings (``train.hparams``: batch 96, mix ratio 1/3).
REFERENCE_TARGET_BATCH = 64
REFERENCE_SURROGATE_BATCH = 96


@dataclass(frozen=True)
class Preset:
    """Sizes of one run. Sample counts are per split; ``nsam`` is the default label budget."""

    name: str
    n_unlabeled: int
    n_surrogate: int
    n_train_pool: int
    n_val: int
    n_test: int
    nsam: int
    num_samples: int
    pretrain_epochs: int
    finetune_epochs: int
    model_size: str
    #: Samples per Parquet shard and per label task (docs/ray.md: ~100 per task amortises overhead).
    shard_size: int = 100
    #: Optimizer steps per pretraining epoch (None: one pass at the reference batch, see above).
    pretrain_steps: int | None = None
    surrogate_steps: int | None = None
    #: ASHA: first rung (epochs) and reduction factor. At ``quick`` the first rung is two
    #: fine-tuning epochs in: no pretraining signal ranked 8 random-search trials well
    #: (Spearman ≤ 0.43 with the final error), the fine-tuned error after 2 epochs did (0.74).
    grace_period: int = 2
    reduction_factor: int = 2
    #: Fine-tuning runs per search trial (seeds), from the same pretrained network; the trial's
    #: score is their mean best validation error. One seed's score carried as much noise
    #: (±0.005–0.01 at ``quick``) as the differences the search ranked on (BENCHMARKS.md).
    finetune_seeds: int = 3
    #: Label-efficiency benchmark defaults: label budgets and fine-tuning seeds.
    bench_nsam: tuple[int, ...] = (50, 100, 200, 400, 800, 1600, 3200)
    bench_seeds: int = 3
    #: Benchmark: the pretraining checkpoints each cell fine-tunes from, as fractions of
    #: ``pretrain_epochs``; the cell keeps the one best on validation (the reference fine-tuned
    #: from epochs 40/100/200/300/400 of 400). Every method gets as many tries: a method that
    #: does not pretrain fine-tunes from as many random initialisations (``benchmark.run``).
    bench_checkpoints: tuple[float, ...] = (1.0,)

    def checkpoint_epochs(self) -> tuple[int, ...]:
        """The pretraining epochs of ``bench_checkpoints``, each at least 1, in order, once each."""
        return tuple(sorted({max(1, round(f * self.pretrain_epochs)) for f in self.bench_checkpoints}))

    def contrastive_steps(self) -> int:
        """Contrastive optimizer steps per pretraining epoch, the same for every trial."""
        return self.pretrain_steps or -(-self.n_unlabeled // REFERENCE_TARGET_BATCH)

    def surrogate_supervised_steps(self) -> int:
        """Supervised surrogate steps per pretraining epoch, the same for every trial."""
        return self.surrogate_steps or -(-self.n_surrogate // REFERENCE_SURROGATE_BATCH)

    def split_counts(self) -> dict[str, int]:
        """Samples per dataset split (the names of ``data.shards.SPLITS``)."""
        return {"unlabeled": self.n_unlabeled, "surrogate": self.n_surrogate, "train": self.n_train_pool,
                "val": self.n_val, "test": self.n_test}


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke", n_unlabeled=200, n_surrogate=100, n_train_pool=50, n_val=50, n_test=50,
        nsam=50, num_samples=2, pretrain_epochs=2, finetune_epochs=4, model_size="small",
        shard_size=50, grace_period=2, finetune_seeds=2, bench_nsam=(25, 50), bench_seeds=1,
    ),
    "quick": Preset(
        name="quick", n_unlabeled=2000, n_surrogate=1000, n_train_pool=200, n_val=500, n_test=400,
        nsam=100, num_samples=6, pretrain_epochs=6, finetune_epochs=30, model_size="small",
        grace_period=8, bench_nsam=(50, 100, 200), bench_seeds=2,
    ),
    # the full label-efficiency curve on a 2-core machine (issue #15): the paper's budgets and pool,
    # half its unlabeled and surrogate sets, the small model; fine-tuned from two pretraining checkpoints
    "curve": Preset(
        name="curve", n_unlabeled=10000, n_surrogate=5000, n_train_pool=3200, n_val=500, n_test=2000,
        nsam=100, num_samples=8, pretrain_epochs=20, finetune_epochs=30, model_size="small",
        grace_period=8, bench_seeds=3, bench_checkpoints=(0.5, 1.0),
    ),
    "paper": Preset(
        name="paper", n_unlabeled=20000, n_surrogate=10000, n_train_pool=3200, n_val=500, n_test=2000,
        nsam=200, num_samples=32, pretrain_epochs=100, finetune_epochs=100, model_size="reference",
        grace_period=10, reduction_factor=3,
    ),
}


#: A preset file: ``base`` (a built-in preset the keys left out come from, default quick), an
#: optional ``name`` (used in output and experiment names; default: the file's stem) and any
#: field of :class:`Preset`.
FILE_SUFFIXES = (".yaml", ".yml")
#: Fields that may be 0 (every other count must be at least 1) and the two that may be null.
_MAY_BE_ZERO = {"pretrain_epochs"}
_MAY_BE_NULL = {"pretrain_steps", "surrogate_steps"}


def get_preset(name: str, problem: str | None = None, **overrides: Any) -> Preset:
    """The preset called ``name`` (a built-in, or a YAML file: ``--preset sizes.yaml``) for
    ``problem``, with ``overrides`` applied (e.g. ``nsam=200``)."""
    if str(name).endswith(FILE_SUFFIXES):
        preset = load_preset_file(Path(name), problem)
    else:
        preset = _built_in(name, problem)
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    if not 1 <= preset.nsam <= preset.n_train_pool:
        raise SibclError(
            f"--nsam {preset.nsam} is out of range: preset {preset.name!r} has a labelled pool of "
            f"1..{preset.n_train_pool} samples"
        )
    return preset


def _built_in(name: str, problem: str | None) -> Preset:
    if name not in PRESETS:
        raise SibclError(f"unknown preset {name!r}: allowed values are {', '.join(PRESETS)}, or a .yaml file")
    if problem is None:
        return PRESETS[name]
    from sibcl_ray.problems import problem_class  # the problem's own departures (e.g. fewer 3D inputs)

    return replace(PRESETS[name], **problem_class(problem).preset_overrides.get(name, {}))


def load_preset_file(path: Path, problem: str | None = None) -> Preset:
    """A preset from a YAML file (see ``FILE_SUFFIXES``' comment), every value checked: what is
    wrong is refused in one line naming the key and what is allowed, before anything runs."""
    where = f"--preset {path}"
    if not path.is_file():
        raise SibclError(f"{where}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise SibclError(f"{where}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise SibclError(f"{where}: must be a mapping of preset fields, e.g. 'base: quick' and 'n_unlabeled: 5000'")
    kinds = {f.name: f.type for f in fields(Preset) if f.name != "name"}
    unknown = sorted((str(k) for k in raw if k not in kinds and k not in ("base", "name")))
    if unknown:
        raise SibclError(f"{where}: unknown key {unknown[0]!r}; allowed: base, name, {', '.join(kinds)}")
    base = raw.get("base", "quick")
    if not isinstance(base, str) or base not in PRESETS:
        raise SibclError(f"{where}: base {base!r} is not a preset; allowed: {', '.join(PRESETS)}")
    name = str(raw.get("name", path.stem))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SibclError(f"{where}: name {name!r} may hold letters, digits, '.', '_' and '-' only")
    values = {key: _checked(where, key, value) for key, value in raw.items() if key in kinds}
    return replace(_built_in(base, problem), name=name, **values)


def _checked(where: str, key: str, value: Any) -> Any:
    """One preset field's value, or a one-line error saying what the field allows."""
    if key == "model_size":
        from sibcl_ray.problems.base import MODEL_SIZES

        if value not in MODEL_SIZES:
            raise SibclError(f"{where}: model_size {value!r} is not allowed; allowed: {', '.join(MODEL_SIZES)}")
        return value
    if key == "bench_checkpoints":
        if not (isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          and 0 < v <= 1 for v in value)):
            raise SibclError(f"{where}: bench_checkpoints {value!r} must be a non-empty list of fractions of "
                             "pretraining in (0, 1], e.g. [0.25, 0.5, 1.0]")
        return tuple(sorted({float(v) for v in value}))
    if key == "bench_nsam":
        if not (isinstance(value, list) and value and all(_is_count(v, 1) for v in value)):
            raise SibclError(f"{where}: bench_nsam {value!r} must be a non-empty list of integers ≥ 1")
        return tuple(int(v) for v in value)
    if value is None and key in _MAY_BE_NULL:
        return None
    low = 2 if key == "reduction_factor" else 0 if key in _MAY_BE_ZERO else 1
    if not _is_count(value, low):
        raise SibclError(f"{where}: {key} {value!r} must be an integer ≥ {low}"
                         + (" or null" if key in _MAY_BE_NULL else ""))
    return int(value)


def _is_count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def write_run_config(preset: Preset, path: Path) -> None:
    """Write the resolved sizes of a run as a preset file: ``--preset PATH`` repeats them exactly."""
    values = asdict(preset)
    values["bench_nsam"] = list(values["bench_nsam"])
    values["bench_checkpoints"] = list(values["bench_checkpoints"])
    text = yaml.safe_dump({"name": values.pop("name"), **values}, sort_keys=False)
    path.write_text(f"# The run sizes of this run, resolved: --preset {path.name} repeats them.\n{text}")
