"""Does the search earn its keep? Its best configuration against the reference settings, same harness.

Runs the label-efficiency benchmark harness (``python -m sibcl_ray.benchmark --methods sibcl``)
twice on the same data, the same label budget and the same fine-tuning seeds: once with the
reference hyperparameters (``sibcl_ray/train/hparams.py``) and once with a finished search's
``best_config.yaml``. Reports the mean test error of each over the seeds and their ratio (the
issue's target: searched ≤ 0.95 × reference). Prints a table, writes JSON.

    python -m sibcl_ray.tune --problem phc --output runs/search
    python benchmarks/bench_search_value.py --search-output runs/search [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from results_file import write_results


def harness(args: argparse.Namespace, summary: dict, name: str, config: Path | None) -> dict:
    out = args.work / name
    command = [sys.executable, "-m", "sibcl_ray.benchmark", "--problem", summary["problem"], "--preset",
               summary["preset"], "--methods", "sibcl", "--nsam", str(summary["nsam"]), "--seeds", str(args.seeds),
               "--data-dir", str(Path(summary["data"]).parent), "--output", str(out)]
    for key, value in summary.get("problem_options", {}).items():
        command += [f"--{key}", str(value)]
    if config is not None:
        command += ["--config", str(config)]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name} benchmark failed:\n{result.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    return {"settings": name, "test_errors": [c["test_error"] for c in cells],
            "val_errors": [c["val_error"] for c in cells], "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-output", type=Path, required=True, help="--output of a finished search")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the two benchmark runs go (default <search-output>/value)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/search_value.json"))
    args = parser.parse_args()
    summary = json.loads((args.search_output / "summary.json").read_text())
    args.work = args.work or args.search_output / "value"
    rows = [harness(args, summary, "reference", None),
            harness(args, summary, "searched", args.search_output / "best_config.yaml")]
    mean = {r["settings"]: sum(r["test_errors"]) / len(r["test_errors"]) for r in rows}
    print(f"{summary['problem']} {summary['preset']}, nsam {summary['nsam']}, {args.seeds} fine-tuning seeds, "
          f"same data and harness (search: {Path(summary['experiment']).name}, wall {summary['wall_s']:.0f} s)")
    print("| settings | test error per seed | mean test error | mean val error |")
    print("|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['settings']} | {', '.join(f'{e:.4f}' for e in r['test_errors'])} | {mean[r['settings']]:.4f} | "
              f"{sum(r['val_errors']) / len(r['val_errors']):.4f} |")
    ratio = mean["searched"] / mean["reference"]
    print(f"searched / reference = {ratio:.3f} (target ≤ 0.95)")
    write_results(args.json, {"search": summary, "rows": rows, "ratio": ratio})


if __name__ == "__main__":
    main()
