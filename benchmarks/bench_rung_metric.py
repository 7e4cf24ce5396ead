"""Which pretraining signal predicts a trial's final fine-tuned validation error? (ASHA's rung metric)

Reads a finished ``--search random`` run (every trial to the end, so every trial has its final
error) and, at every pretraining epoch and every ASHA rung, gives the Spearman rank correlation
of each candidate signal with the final fine-tuned ``val_error`` across trials:
``probe_val_error`` (ridge probe on the frozen encoder, scored on validation), ``knn_val_error``
(5 nearest labelled neighbours), ``val_error``
(while pretraining: zero-shot error of the surrogate-trained predictor; while fine-tuning:
the best fine-tuned epoch so far) and ``embedding_std`` (collapse monitor; a higher spread
should mean a lower error, so its sign is flipped). Prints a table, writes JSON.

    python -m sibcl_ray.tune --problem phc --search random --num-samples 8 --output runs/random
    python benchmarks/bench_rung_metric.py --search-output runs/random
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from results_file import write_results
from scipy.stats import spearmanr

CANDIDATES = ("probe_val_error", "knn_val_error", "val_error", "embedding_std")


def trial_histories(experiment: Path) -> list[dict[int, dict]]:
    """Each trial's results keyed by ``epochs_done`` (a resumed trial's later report wins)."""
    histories = []
    for result_file in sorted(experiment.glob("*/result.json")):
        by_epoch: dict[int, dict] = {}
        for line in result_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "epochs_done" in row:
                    by_epoch[int(row["epochs_done"])] = row
        if by_epoch and by_epoch[max(by_epoch)].get("training_complete"):
            histories.append(by_epoch)
    return histories


def correlations(histories: list[dict[int, dict]], epochs: list[int]) -> list[dict]:
    rows = []
    finals = [h[max(h)]["val_error"] for h in histories]
    for epoch in epochs:
        row = {"epochs_done": epoch, "phase": histories[0].get(epoch, {}).get("phase", "?")}
        for name in CANDIDATES:
            pairs = [(h[epoch][name], final) for h, final in zip(histories, finals)
                     if epoch in h and isinstance(h[epoch].get(name), (int, float)) and math.isfinite(h[epoch][name])]
            if len(pairs) >= 4:
                values, targets = zip(*pairs)
                sign = -1.0 if name == "embedding_std" else 1.0
                rho = spearmanr([sign * v for v in values], targets).statistic
                row[name] = None if math.isnan(rho) else float(rho)
            else:
                row[name] = None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-output", type=Path, required=True, help="--output of a finished --search random run")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/rung_metric.json"))
    args = parser.parse_args()
    summary = json.loads((args.search_output / "summary.json").read_text())
    experiment = Path(summary["experiment"])
    histories = trial_histories(experiment)
    if len(histories) < 4:
        raise SystemExit(f"{experiment}: {len(histories)} trials ran to the end; need at least 4")
    settings = json.loads((args.search_output / "search_settings.json").read_text())
    preset = settings["preset"]
    total = preset["pretrain_epochs"] + preset["finetune_epochs"]
    rungs, rung = [], preset["grace_period"]
    while rung < total:
        rungs.append(rung)
        rung *= preset["reduction_factor"]
    epochs = sorted(set(range(1, preset["pretrain_epochs"] + 1)) | set(rungs))
    rows = correlations(histories, epochs)
    print(f"{summary['problem']} {summary['preset']}: Spearman ρ of each signal with the final fine-tuned "
          f"val_error, {len(histories)} trials run to the end ({experiment.name}); ASHA rungs at {rungs}")
    print("| epochs_done | phase | ASHA rung | " + " | ".join(CANDIDATES) + " |")
    print("|---:|---|---|" + "---:|" * len(CANDIDATES))
    for row in rows:
        cells = " | ".join("—" if row[c] is None else f"{row[c]:+.2f}" for c in CANDIDATES)
        print(f"| {row['epochs_done']} | {row['phase']} | {'yes' if row['epochs_done'] in rungs else ''} | {cells} |")
    write_results(args.json, {"experiment": str(experiment), "n_trials": len(histories), "rungs": rungs,
                              "rows": rows, "finals": [h[max(h)]["val_error"] for h in histories]})


if __name__ == "__main__":
    main()
