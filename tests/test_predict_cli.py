"""`python -m sibcl_ray.predict` as a user runs it: real files in, real files out, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sibcl_ray.data.shards import dataset_dir, write_shard
from sibcl_ray.problems import get_problem
from test_predictor import _export


def _predict(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sibcl_ray.predict", *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A phc model folder and inputs of every kind, good and bad."""
    root = tmp_path_factory.mktemp("predict")
    _export(root / "model", "phc", {})
    rng = np.random.default_rng(0)
    cells = rng.uniform(1.0, 20.0, size=(6, 32, 32)).astype(np.float32)
    np.save(root / "cells.npy", cells)
    np.savez(root / "cells.npz", x=cells)
    np.savez(root / "no_x.npz", eps=cells)
    np.save(root / "small.npy", cells[:, :16, :16])
    np.save(root / "low.npy", np.full((2, 32, 32), 0.5))
    np.save(root / "nan.npy", np.where(np.arange(2 * 32 * 32).reshape(2, 32, 32) == 1030, np.nan, 5.0))
    for problem, options, x in (("phc", {}, cells), ("tise", {"dim": 2}, rng.uniform(0, 1, (4, 32, 32)))):
        split = dataset_dir(root / "data", get_problem(problem, **options).signature(), 0) / "test"
        split.mkdir(parents=True)
        write_shard(split / "shard-00000.parquet", 100, x, None)
        (root / f"{problem}_split").symlink_to(split)
    (root / "a_file").write_text("not a folder")
    (root / "foreign").mkdir()
    (root / "foreign" / "model.json").write_text('{"format": "onnx"}')
    (root / "exists.npy").write_bytes(b"keep me")
    return {"root": root, "cells": cells}  # type: ignore[dict-item]


def test_npy_npz_and_parquet_inputs_give_the_same_predictions(files: dict) -> None:
    root = files["root"]
    outputs = {}
    for name, source in (("npy", "cells.npy"), ("npz", "cells.npz"), ("parquet", "phc_split")):
        result = _predict("--model", "model", "--inputs", source, "--output", f"out/{name}.npy", cwd=root)
        assert result.returncode == 0, result.stderr
        assert "wrote 6 dos predictions (400 values each)" in result.stdout
        outputs[name] = np.load(root / "out" / f"{name}.npy")
    assert outputs["npy"].shape == (6, 400)
    np.testing.assert_allclose(outputs["npz"], outputs["npy"], atol=1e-6)
    np.testing.assert_allclose(outputs["parquet"], outputs["npy"], atol=1e-6)

    csv = _predict("--model", "model", "--inputs", "phc_split/shard-00000.parquet", "--output", "out/dos.csv",
                   "--problem", "phc", cwd=root)
    assert csv.returncode == 0, csv.stderr
    lines = (root / "out" / "dos.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["index", "dos_0.0000", "dos_0.0024"] and len(header) == 401 and len(lines) == 7
    table = np.loadtxt(root / "out" / "dos.csv", delimiter=",", skiprows=1)
    assert list(table[:, 0]) == [100, 101, 102, 103, 104, 105]  # the shard's own sample indices
    np.testing.assert_allclose(table[:, 1:], outputs["npy"], rtol=1e-6, atol=1e-6)


BAD = [
    (["--model", "missing"], "error: model folder missing does not exist"),
    (["--model", "foreign"], "error: foreign/model.json has format 'onnx': allowed is 'sibcl_ray.model/1'"),
    (["--model", "a_file"], "error: model a_file is a file"),
    (["--problem", "tise"], "error: --model model predicts phc, not --problem tise"),
    (["--inputs", "tise_split"], "error: --inputs tise_split holds tise data but the model predicts phc"),
    (["--inputs", "small.npy"], "error: inputs have shape (6, 16, 16): allowed are (32, 32) (one input) or (N, 32, 32) for phc"),
    (["--inputs", "low.npy"], "error: input 0 has values in [0.5, 0.5]: allowed is the physical range [1, 20] of phc"),
    (["--inputs", "nan.npy"], "error: input 1 holds nan at (0, 6): allowed are finite values only"),
    (["--inputs", "no_x.npz"], "error: --inputs no_x.npz has no array 'x': it holds eps"),
    (["--inputs", "nothing.npy"], "error: --inputs nothing.npy does not exist"),
    (["--output", "a_file/out.npy"], "error: --output {root}/a_file/out.npy lies under {root}/a_file, which is a file"),
    (["--output", "exists.npy"], "error: --output {root}/exists.npy already exists: choose another name, or pass --overwrite"),
    (["--output", "out.txt"], "error: --output {root}/out.txt has suffix '.txt': allowed are .npy, .csv"),
    (["--batch-size", "0"], "error: --batch-size 0 must be at least 1"),
]


@pytest.mark.parametrize("change, expected", BAD, ids=[" ".join(c) for c, _ in BAD])
def test_bad_input_is_one_line_and_writes_nothing(files: dict, change: list[str], expected: str) -> None:
    root = files["root"]
    args = {"--model": "model", "--inputs": "cells.npy", "--output": "bad/out.npy"}
    extra = []
    for flag, value in zip(change[::2], change[1::2]):
        if flag in args:
            args[flag] = value
        else:
            extra += [flag, value]
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = _predict(*[x for kv in args.items() for x in kv], *extra, cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(expected.format(root=root)), lines[0]
    assert "label_settings" not in lines[0] and "{'" not in lines[0], lines[0]  # the problem's name, no internals
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written, nothing replaced
    assert (root / "exists.npy").read_bytes() == b"keep me"
