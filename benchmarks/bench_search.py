"""TPE + ASHA against random search at the same trial budget, through the real CLI.

Runs ``python -m sibcl_ray.tune`` twice on the same data and seed, once with
``--search tpe-asha`` and once with ``--search random``, and reports the best validation
error, its test error, how many trials ran every epoch and the wall time. Prints a table,
writes JSON.

    python benchmarks/bench_search.py [--problem phc] [--preset smoke] [--num-samples 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from results_file import write_results


def search(kind: str, args: argparse.Namespace, data_dir: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "sibcl_ray.tune", "--problem", args.problem, "--preset", args.preset,
               "--num-samples", str(args.num_samples), "--seed", str(args.seed), "--search", kind,
               "--output", str(out / kind), "--data-dir", str(data_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{kind} search failed:\n{result.stderr[-3000:]}")
    summary = json.loads((out / kind / "summary.json").read_text())
    return {"search": kind, **{k: summary[k] for k in ("val_error", "test_error", "n_trials", "n_trials_completed", "wall_s")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="phc")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/search.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir, out = Path(scratch) / "data", Path(scratch) / "out"
        rows = [search(kind, args, data_dir, out) for kind in ("tpe-asha", "random")]
    print(f"{args.problem}, preset {args.preset}, {args.num_samples} trials each, seed {args.seed}")
    print("| search | best val error | its test error | trials run to the end | wall s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['search']} | {r['val_error']:.4f} | {r['test_error']:.4f} | {r['n_trials_completed']}/{r['n_trials']} | {r['wall_s']:.0f} |")
    write_results(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
