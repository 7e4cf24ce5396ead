"""``python -m sibcl_ray.predict``: labels for new inputs from a trained model folder.

    python -m sibcl_ray.predict --model sibcl_runs/phc-quick/model --inputs cells.npy --output dos.npy
    python -m sibcl_ray.predict --model sibcl_runs/tise-quick/model --inputs V.npz --output E0.csv

Inputs: ``.npy`` (an array of shape ``(N, *input_shape)`` or one input), ``.npz`` (key ``x``),
or our Parquet shards (one ``shard-*.parquet`` file or a split folder of them), in physical
units (ε in [1, 20] for phc, V in [0, 1] for tise). Output: ``.npy`` (``(N, label_dim)``) or
``.csv`` (an ``index`` column, then one column per label component). Every check happens
before anything is written; a bad flag or file is one ``error:`` line and exit status 2, and
an existing output is never replaced without ``--overwrite``. No Ray: torch only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sibcl_ray.cli import run_main
from sibcl_ray.errors import SibclError
from sibcl_ray.problems import available_problems

INPUT_SUFFIXES = (".npy", ".npz", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".csv")
#: Show a progress bar from this many inputs on.
PROGRESS_FROM = 2048


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.predict",
        description="Predict labels (phc: the DOS on the f̃ grid; tise: E0) for new inputs with a model folder "
                    "written by a search (<output>/model) or by the benchmark (--export).")
    parser.add_argument("--model", type=Path, required=True, help="model folder (holds model.json and model.pt)")
    parser.add_argument("--inputs", type=Path, required=True,
                        help="inputs in physical units: .npy, .npz (key x), a Parquet shard or a folder of shards")
    parser.add_argument("--output", type=Path, required=True, help="where to write the labels: .npy or .csv")
    parser.add_argument("--problem", help=f"refuse a model of another problem ({', '.join(available_problems())})")
    parser.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass (default 256)")
    parser.add_argument("--device", help="torch device (default: cuda when there is one, else cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    return parser


def check_output(path: Path, overwrite: bool) -> Path:
    """An output path we may write: a known suffix, no file among its parents, not there yet."""
    path = path.expanduser().absolute()
    if path.suffix not in OUTPUT_SUFFIXES:
        raise SibclError(f"--output {path} has suffix {path.suffix or '(none)'!r}: allowed are {', '.join(OUTPUT_SUFFIXES)}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SibclError(f"--output {path} lies under {parent}, which is a file, not a folder")
            break
    if path.is_dir():
        raise SibclError(f"--output {path} is a folder: pass a file name ending in {' or '.join(OUTPUT_SUFFIXES)}")
    if path.exists() and not overwrite:
        raise SibclError(f"--output {path} already exists: choose another name, or pass --overwrite to replace it")
    return path


def _shard_files(path: Path) -> list[Path]:
    if path.is_dir():
        shards = sorted(path.glob("shard-*.parquet"))
        if not shards:
            raise SibclError(f"--inputs {path} is a folder without shard-*.parquet files: allowed are "
                             f"{', '.join(INPUT_SUFFIXES)} files or a split folder of shards")
        return shards
    return [path]


def _shard_problem(shards: list[Path]) -> dict[str, Any] | None:
    """The problem signature of the dataset a shard belongs to (``<dataset>/<split>/shard``), if recorded."""
    signature_file = shards[0].resolve().parent.parent / "signature.json"
    if not signature_file.is_file():
        return None
    try:
        return json.loads(signature_file.read_text())["signature"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def read_inputs(path: Path, model_signature: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, their sample indices) from ``--inputs`` (indices only for Parquet shards, which
    carry them); shards of another problem are refused."""
    path = path.expanduser()
    if not path.exists():
        raise SibclError(f"--inputs {path} does not exist")
    if path.is_file() and path.suffix not in INPUT_SUFFIXES:
        raise SibclError(f"--inputs {path} has suffix {path.suffix or '(none)'!r}: allowed are "
                         f"{', '.join(INPUT_SUFFIXES)} or a folder of Parquet shards")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise SibclError(f"--inputs {path} has no array 'x': it holds {', '.join(archive.files) or 'nothing'}")
                return archive["x"], None
    except (ValueError, OSError) as err:
        raise SibclError(f"--inputs {path} is not a readable NumPy file ({type(err).__name__}: {err})") from None
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = _shard_files(path)
    recorded = _shard_problem(shards)
    if recorded is not None and recorded.get("problem") != model_signature.get("problem"):
        raise SibclError(f"--inputs {path} holds {recorded.get('problem')} data but the model predicts "
                         f"{model_signature.get('problem')}: pass inputs of the model's problem")
    try:
        table = pa.concat_tables(pq.read_table(p, columns=["index", "x"]) for p in shards)
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise SibclError(f"--inputs {path} is not a sibcl_ray Parquet shard with columns index and x "
                         f"({type(err).__name__})") from None
    return table.column("x").combine_chunks().to_numpy_ndarray(), table.column("index").to_numpy()


def write_output(path: Path, labels: np.ndarray, index: np.ndarray, columns: list[str]) -> None:
    """Write atomically (a temporary name, then a rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, labels)
        else:
            header = ",".join(["index", *columns])
            table = np.column_stack([index.astype(np.float64), labels.astype(np.float64)])
            np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt=["%d"] + ["%.7g"] * labels.shape[1])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _device(name: str | None) -> Any:
    if name is None:
        return None
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise SibclError(f"--device {name!r} is not a torch device: allowed are cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SibclError(f"--device {name} asks for a GPU, but torch sees none here: use --device cpu")
    return device


def main(argv: list[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        if args.batch_size < 1:
            raise SibclError(f"--batch-size {args.batch_size} must be at least 1")
        if args.problem is not None and args.problem not in available_problems():
            raise SibclError(f"--problem {args.problem!r} is unknown: allowed values are {', '.join(available_problems())}")
        output = check_output(args.output, args.overwrite)
        from sibcl_ray.predictor import load_model, read_model_info

        info = read_model_info(args.model)
        if args.problem is not None and info["problem"] != args.problem:
            raise SibclError(f"--model {args.model} predicts {info['problem']}, not --problem {args.problem}")
        x, index = read_inputs(args.inputs, info["problem_signature"])
        predictor = load_model(args.model, device=_device(args.device))
        x = predictor.check_inputs(x)
        index = index if index is not None else np.arange(len(x))
        bar = None
        if len(x) >= PROGRESS_FROM:
            from tqdm import tqdm

            bar = tqdm(total=len(x), unit="input", desc="predict", file=sys.stderr)
        labels = predictor.predict(x, batch_size=args.batch_size, progress=bar.update if bar else None)
        if bar is not None:
            bar.close()
        write_output(output, labels, index, predictor.problem.label_columns())
        print(f"wrote {len(labels)} {info['label_name']} predictions ({labels.shape[1]} values each) to {output}")
        return 0

    return run_main(body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
