"""How much room is there for a search to beat the reference settings? (issue #11)

Pretrains SIB-CL once per pretraining seed at the reference settings on a generated dataset,
then fine-tunes that encoder with the reference fine-tuning settings and with a grid around
them (fine-tuning learning rate, batch and length), each scored as a search trial is (the mean
best validation error of 3 fine-tuning seeds) and evaluated once on test (the best seed's
selected model). The same training loop as a trial (``train.loop.train_loop``), in this
process, no Ray: a table of what each knob is worth, and how much the pretraining seed alone
moves the result. Prints a table, writes JSON.

    python -m sibcl_ray.generate --problem phc --data-dir /tmp/h/data
    python benchmarks/bench_headroom.py --problem phc --data-dir /tmp/h/data --work /tmp/h/work
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from results_file import write_results
from sibcl_ray.data import shards
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.presets import get_preset
from sibcl_ray.problems import get_problem
from sibcl_ray.train import loop
from sibcl_ray.train.checkpoints import load_state, selected_weights
from sibcl_ray.train.hparams import with_defaults

#: (lr_finetune, finetune_batch_size, fine-tuning epochs) around the reference (1e-3, 32, preset's).
GRID = [(1e-3, 32, 60), (1e-3, 32, 100), (5e-4, 32, None), (2e-3, 32, None), (3e-3, 32, 60), (1e-3, 16, None),
        (1e-3, 16, 60), (2e-3, 16, 60)]


class InProcess:
    """The loop's surroundings in a plain process: the arrays, the CPU, the last checkpoint kept."""

    rank, world_size, device = 0, 1, torch.device("cpu")

    def __init__(self, arrays: dict[str, dict[str, np.ndarray]], keep: Path) -> None:
        self.arrays, self.keep, self.metrics = arrays, keep, {}

    def split_batches(self, name: str) -> list[dict[str, np.ndarray]]:
        return [self.arrays[name]]

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def latest_checkpoint(self) -> None:
        return None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.metrics = metrics
        if checkpoint_dir:
            shutil.rmtree(self.keep, ignore_errors=True)
            shutil.copytree(checkpoint_dir, self.keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="phc")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--data-dir", type=Path, required=True, help="the --data-dir of a generated dataset")
    parser.add_argument("--seed", type=int, default=0, help="the dataset's seed")
    parser.add_argument("--pretrain-seeds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="headroom-")))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/headroom.json"))
    args = parser.parse_args()

    problem, preset = get_problem(args.problem), get_preset(args.preset, args.problem)
    folder = shards.dataset_dir(args.data_dir, problem.signature(), args.seed)
    counts = preset.split_counts() | {"train": preset.nsam}
    arrays = {s: shards.read_split(sorted((folder / s).glob("shard-*.parquet")), n) for s, n in counts.items()}
    test = loop._load_split(problem, [arrays["test"]], torch.device("cpu"))

    def run(hparams: dict[str, Any], pretrain_epochs: int, finetune_epochs: int, seed: int, init: Path | None,
            keep: Path) -> InProcess:
        where = InProcess(arrays, keep)
        loop.train_loop({
            "problem": problem.name, "problem_options": {}, "method": "sibcl", "model_size": preset.model_size,
            "pretrain_epochs": pretrain_epochs, "finetune_epochs": finetune_epochs, "seed": seed, "trial_name": "headroom",
            "pretrain_steps": preset.contrastive_steps(), "surrogate_steps": preset.surrogate_supervised_steps(),
            "rung_metric": "knn_val_error", "hparams": with_defaults(hparams),
            "splits": ("train", "val", "unlabeled", "surrogate") if pretrain_epochs else ("train", "val"),
            "init_state": str(init) if init else None, "finetune_seeds": preset.finetune_seeds, "threads": args.threads,
        }, where)
        return where

    def test_error(checkpoint: Path) -> float:
        net = SIBCLNet(problem.network_spec(preset.model_size), problem.label_dim)
        net.load_state_dict(selected_weights(load_state(checkpoint)))
        return loop._val_error(net, problem, test)

    rows = []
    for pretrain_seed in range(args.pretrain_seeds):
        encoder = args.work / f"pretrained-s{pretrain_seed}"
        if not (encoder / "state.pt").exists():
            run({}, preset.pretrain_epochs, 0, pretrain_seed, None, encoder)
        grid = [(1e-3, 32, None)] + (GRID if pretrain_seed == 0 else [])
        for lr, batch, epochs in grid:
            start = time.perf_counter()
            done = run({"lr_finetune": lr, "finetune_batch_size": batch}, 0, epochs or preset.finetune_epochs,
                       pretrain_seed, encoder, args.work / "finetuned")
            state = load_state(args.work / "finetuned")
            rows.append({"pretrain_seed": pretrain_seed, "lr_finetune": lr, "finetune_batch_size": batch,
                         "finetune_epochs": epochs or preset.finetune_epochs, "val_error": done.metrics["val_error"],
                         "val_error_per_seed": state["seed_best_val"], "best_epoch_per_seed": state["seed_best_epoch"],
                         "test_error": test_error(args.work / "finetuned"), "seconds": time.perf_counter() - start})
            r = rows[-1]
            print(f"pretraining seed {pretrain_seed}, lr {lr:g}, batch {batch}, {r['finetune_epochs']} epochs: val "
                  f"{r['val_error']:.4f}, test {r['test_error']:.4f} (best epochs {r['best_epoch_per_seed']})", flush=True)

    reference = rows[0]
    print(f"\n{problem.name} {preset.name}, nsam {preset.nsam}; reference fine-tuning: lr 1e-3, batch 32, "
          f"{preset.finetune_epochs} epochs")
    print("| pretraining seed | lr_finetune | batch | epochs | val (mean of 3 seeds) | test | test / reference |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pretrain_seed']} | {r['lr_finetune']:g} | {r['finetune_batch_size']} | {r['finetune_epochs']} | "
              f"{r['val_error']:.4f} | {r['test_error']:.4f} | {r['test_error'] / reference['test_error']:.3f} |")
    write_results(args.json, {"problem": problem.name, "preset": preset.name, "nsam": preset.nsam, "rows": rows})


if __name__ == "__main__":
    main()
