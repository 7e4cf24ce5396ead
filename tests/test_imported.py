"""Bringing your own data (``python -m sibcl_ray.import``, ``data.imported``, ``problems.phc_reference``):
what is written is exactly what was given, the reference's HDF5 lands on our label grid with
the reference's normalisation, every bad file is one line with nothing written, and an
imported dataset runs through ``tune`` and ``benchmark`` as a user runs them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sibcl_ray.data import shards
from sibcl_ray.data.imported import dataset_for_run, import_split, open_dataset
from sibcl_ray.errors import SibclError
from sibcl_ray.physics import photonic
from sibcl_ray.presets import get_preset
from sibcl_ray.problems import get_problem
from sibcl_ray.problems.phc import PhotonicCrystalDOS
from sibcl_ray.problems.phc_reference import REFERENCE_FTILDE

PHC = get_problem("phc")


def _import(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sibcl_ray.import", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=300)


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256: what 'nothing written' is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


@pytest.fixture(scope="module")
def cells() -> dict[str, np.ndarray]:
    """Real phc cells and their labels from the package's own solver (numpy only, no Ray)."""
    rng = np.random.default_rng(7)
    x = PHC.target_inputs(rng, 8)
    return {"x": x, "y": PHC.target_labels(x)}


def _write_reference_h5(path: Path, images: np.ndarray, dos_on_reference_grid: np.ndarray | None) -> None:
    """A file in the reference's layout (``datasets_PhC_SE.py``): keys from 1, unnormalised DOS."""
    with h5py.File(path, "w") as f:
        for i, image in enumerate(images, start=1):
            f.create_dataset(f"unitcell/mpbepsimage/{i}", data=image.astype(np.float32))
            f.create_dataset(f"unitcell/epsavg/{i}", data=np.float32(image.mean()))
            if dos_on_reference_grid is not None:
                f.create_dataset(f"mpbcal/DOS/{i}", data=dos_on_reference_grid[i - 1].astype(np.float32))


def test_the_reference_hdf5_empty_lattice_is_two_pi_f_on_our_grid(tmp_path: Path) -> None:
    """Closed form: a uniform cell's DOS is the empty lattice's, 2πf̃·√ε̄ unnormalised in the
    reference's file, 2πf̃ after its normalisation; linear resampling of a linear function is exact."""
    eps = np.array([1.0, 4.0, 13.0])
    images = np.ones((3, 32, 32)) * eps[:, None, None]
    unnormalised = 2 * np.pi * REFERENCE_FTILDE[None, :] * np.sqrt(eps)[:, None]
    _write_reference_h5(tmp_path / "ref.h5", images, unnormalised)
    x, y = PHC.read_foreign_file(tmp_path / "ref.h5")
    assert x.shape == (3, 32, 32) and np.array_equal(x, images)
    np.testing.assert_allclose(y, np.broadcast_to(2 * np.pi * photonic.FTILDE, (3, 400)), rtol=1e-6, atol=1e-5)
    # and the package's own solver agrees with the closed form on the scored band (its smoothing is
    # a Gaussian of a linear function there, which leaves it unchanged)
    ours = PHC.target_labels(images[1:2].astype(np.float32))
    assert PHC.errors(ours, y[1:2])[0] < 2e-3


def test_real_cells_through_the_reference_layout_come_back_as_our_labels(tmp_path: Path, cells: dict) -> None:
    """Our labels written the reference's way (×√ε̄, on its 500-point grid) and imported back
    differ only by the two resamplings: far below the label's own error scale (≈ 5 % at best)."""
    scale = np.sqrt(cells["x"].reshape(len(cells["x"]), -1).mean(axis=1))
    on_reference = np.stack([np.interp(REFERENCE_FTILDE, photonic.FTILDE, y) for y in cells["y"]]) * scale[:, None]
    _write_reference_h5(tmp_path / "ref.h5", cells["x"], on_reference)
    record = import_split(PHC, tmp_path / "data", "ref", "train", tmp_path / "ref.h5", rows="2:8")
    assert record["count"] == 6 and record["rows"] == [2, 8]
    dataset = open_dataset(tmp_path / "data", "ref", PHC)
    paths, count = dataset.splits["train"]
    stored = shards.read_split(paths, count)
    assert np.array_equal(stored["x"], cells["x"][2:8])
    assert PHC.errors(stored["y"], cells["y"][2:8]).max() < 2e-3
    # inputs only: the reference's unlabeled pool has no mpbcal/DOS
    _write_reference_h5(tmp_path / "pool.h5", cells["x"][:2] * 0 + 3.0, None)
    assert import_split(PHC, tmp_path / "data", "ref", "unlabeled", tmp_path / "pool.h5")["count"] == 2


def test_npy_npz_and_parquet_store_exactly_what_was_given(tmp_path: Path, cells: dict) -> None:
    np.save(tmp_path / "x.npy", cells["x"][:5])
    np.save(tmp_path / "y.npy", cells["y"][:5].astype(np.float64))
    np.savez(tmp_path / "val.npz", x=cells["x"][5:7], y=cells["y"][5:7])
    pq.write_table(pa.table({"x": [row.ravel().tolist() for row in cells["x"][7:]],  # plain list columns
                             "y": [row.tolist() for row in cells["y"][7:]]}), tmp_path / "test.parquet")
    import_split(PHC, tmp_path / "data", "mine", "train", tmp_path / "x.npy", tmp_path / "y.npy", shard_size=2)
    import_split(PHC, tmp_path / "data", "mine", "val", tmp_path / "val.npz")
    with pytest.raises(SibclError, match=r"inputs in .*test.parquet have shape \(1, 1024\)"):  # flat lists need a shape
        import_split(PHC, tmp_path / "data", "mine", "test", tmp_path / "test.parquet")
    pq.write_table(pa.table({"x": pa.FixedShapeTensorArray.from_numpy_ndarray(cells["x"][7:]),
                             "y": pa.FixedShapeTensorArray.from_numpy_ndarray(cells["y"][7:])}), tmp_path / "test.parquet")
    import_split(PHC, tmp_path / "data", "mine", "test", tmp_path / "test.parquet")
    dataset = open_dataset(tmp_path / "data", "mine", PHC)
    assert {s: n for s, (_, n) in dataset.splits.items()} == {"train": 5, "val": 2, "test": 1}
    assert len(dataset.splits["train"][0]) == 3  # shards of 2, 2 and 1
    for split, part in (("train", slice(0, 5)), ("val", slice(5, 7)), ("test", slice(7, 8))):
        stored = shards.read_split(*dataset.splits[split])
        assert np.array_equal(stored["x"], cells["x"][part]) and np.array_equal(stored["y"], cells["y"][part])
    meta = json.loads((tmp_path / "data" / "mine" / "dataset.json").read_text())
    assert meta["problem"] == "phc" and meta["splits"]["train"]["source"]["labels"]["sha256"] == hashlib.sha256(
        (tmp_path / "y.npy").read_bytes()).hexdigest()

    # a damaged shard is refused by name, never regenerated or "repaired"
    shard = dataset.splits["train"][0][1]
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(SibclError, match=rf"imported shard {shard} is checksum differs.*never regenerated"):
        open_dataset(tmp_path / "data", "mine", PHC)


def test_imported_splits_size_the_run_and_the_rest_is_generated_or_refused(tmp_path: Path, cells: dict) -> None:
    np.save(tmp_path / "x.npy", cells["x"][:6])
    np.save(tmp_path / "y.npy", cells["y"][:6])
    import_split(PHC, tmp_path, "mine", "train", tmp_path / "x.npy", tmp_path / "y.npy")
    needed = {"train": ["the search"], "val": ["the search"], "unlabeled": ["sibcl"]}
    dataset, preset = dataset_for_run(tmp_path, "mine", PHC, get_preset("smoke", "phc", nsam=4), needed, (4,))
    assert (preset.n_train_pool, preset.n_val, preset.n_unlabeled) == (6, 50, 200)  # only train is imported
    with pytest.raises(SibclError, match=r"--nsam 50 is more than the 6 labelled samples of split 'train'"):
        dataset_for_run(tmp_path, "mine", PHC, get_preset("smoke", "phc"), needed, (50,))

    class DataOnlyPhc(PhotonicCrystalDOS):
        generates = False

    with pytest.raises(SibclError, match=r"has no split 'val', which the search needs, and --problem phc cannot generate"):
        dataset_for_run(tmp_path, "mine", DataOnlyPhc(), get_preset("smoke", "phc", nsam=4), needed, (4,))


def _bad_files(tmp: Path, cells: dict) -> dict[str, Path]:
    x, y = cells["x"][:4], cells["y"][:4]
    files = {"x": x, "y": y, "x_channel": x[:, None], "x_nan": np.where(np.arange(32)[None, None, :] == 3, np.nan, x),
             "x_low": x * 0 + 0.5, "y_short": y[:3], "y_dim": y[:, :100], "y_inf": np.where(y > 5, np.inf, y),
             "x_other": cells["x"][4:]}
    paths = {}
    for name, array in files.items():
        paths[name] = tmp / f"{name}.npy"
        np.save(paths[name], array)
    np.savez(tmp / "no_x.npz", inputs=x)
    paths["no_x"] = tmp / "no_x.npz"
    (tmp / "cells.txt").write_text("1 2 3\n")
    paths["txt"] = tmp / "cells.txt"
    (tmp / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    paths["broken"] = tmp / "broken.npy"
    return paths


# (arguments after --problem phc --data-dir D, expected error line start). The dataset 'mine' holds
# a train split of {x}, {y} before each case; {f[name]} are the files of _bad_files.
BAD_IMPORTS = [
    (["--name", "new", "--split", "val", "--inputs", "{x_channel}", "--labels", "{y}"],
     "error: inputs in {x_channel} have shape (4, 1, 32, 32): --problem phc needs (N, 32, 32) with N ≥ 1"),
    (["--name", "new", "--split", "val", "--inputs", "{x_nan}", "--labels", "{y}"],
     "error: inputs in {x_nan}: sample 0 (and 3 more) holds NaN or infinite values"),
    (["--name", "new", "--split", "val", "--inputs", "{x_low}", "--labels", "{y}"],
     "error: inputs in {x_low} span [0.5, 0.5]: --problem phc takes values in [1, 20]"),
    (["--name", "new", "--split", "val", "--inputs", "{x}", "--labels", "{y_short}"],
     "error: labels in {y_short} are 3 rows for 4 inputs in {x}: one label per input is needed"),
    (["--name", "new", "--split", "val", "--inputs", "{x}", "--labels", "{y_dim}"],
     "error: labels in {y_dim} have shape (4, 100): --problem phc needs (N, 400)"),
    (["--name", "new", "--split", "val", "--inputs", "{x}", "--labels", "{y_inf}"],
     "error: labels in {y_inf}: label 0 (and 3 more) holds NaN or infinite values"),
    (["--name", "new", "--split", "val", "--inputs", "{x}"], "error: --split val needs labels: give --labels FILE"),
    (["--name", "new", "--split", "unlabeled", "--inputs", "{x}", "--labels", "{y}"],
     "error: --split unlabeled holds inputs only: leave out --labels {y}"),
    (["--name", "new", "--split", "val", "--inputs", "{no_x}", "--labels", "{y}"],
     "error: --inputs {no_x} has no array 'x' (it has: inputs)"),
    (["--name", "new", "--split", "val", "--inputs", "{txt}", "--labels", "{y}"],
     "error: {txt}: .txt is not a format --problem phc reads: give .npy, .npz (arrays x, y) or .parquet"),
    (["--name", "new", "--split", "val", "--inputs", "{broken}", "--labels", "{y}"],
     "error: --inputs {broken} cannot be read as .npy:"),
    (["--name", "new", "--split", "val", "--inputs", "{tmp}/none.npy", "--labels", "{y}"],
     "error: --inputs {tmp}/none.npy is not a file"),
    (["--name", "new", "--split", "val", "--inputs", "{x}", "--labels", "{y}", "--rows", "3:9"],
     "error: --rows '3:9' is not START:STOP with 0 ≤ START < STOP ≤ 4"),
    (["--name", "../up", "--split", "val", "--inputs", "{x}", "--labels", "{y}"], "error: --name '../up' is not a dataset name"),
    (["--name", "mine", "--split", "train", "--inputs", "{x_other}", "--labels", "{y}"],
     "error: split 'train' of dataset 'mine' already exists"),
    (["--name", "mine", "--split", "test", "--inputs", "{x}", "--labels", "{y}"],
     "error: 4 inputs of --split test (the first: row 0) are already in split 'train' of dataset 'mine': splits must not share inputs"),
    (["--name", "mine", "--label", "bands", "--split", "unlabeled", "--inputs", "{x_other}"],
     "error: dataset 'mine' holds phc data (label=dos, resolution=32): it does not fit --problem phc (label=bands, resolution=32)"),
]


def test_every_bad_import_is_one_line_and_writes_nothing(tmp_path: Path, cells: dict) -> None:
    paths = _bad_files(tmp_path, cells)
    data = tmp_path / "data"
    good = _import("--problem", "phc", "--data-dir", str(data), "--name", "mine", "--split", "train",
                   "--inputs", str(paths["x"]), "--labels", str(paths["y"]))
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith("use it with --dataset mine")
    before = _tree(data)
    fill = {**{k: str(v) for k, v in paths.items()}, "tmp": str(tmp_path)}
    for args, expected in BAD_IMPORTS:
        args = [a.format(**fill) for a in args]
        done = _import("--problem", "phc", "--data-dir", str(data), *args)
        lines = done.stderr.strip().splitlines()
        assert (done.returncode, len(lines)) == (2, 1), (args, done.stderr)
        assert lines[0].startswith(expected.format(**fill)), (args, lines[0])
        assert _tree(data) == before, f"{args} changed the data dir"
    # a data dir that cannot be written (here: under a file) is one line too, and leaves nothing
    blocked = _import("--problem", "phc", "--data-dir", f"{paths['x']}/data", "--name", "new", "--split", "val",
                      "--inputs", str(paths["x"]), "--labels", str(paths["y"]))
    assert blocked.returncode == 2 and blocked.stderr.strip().splitlines() == [
        f"error: cannot write dataset 'new' in {paths['x']}/data: Not a directory ({paths['x']}/data/new); "
        "nothing of this import was kept"], blocked.stderr


@pytest.mark.slow
def test_an_imported_phc_dataset_runs_tune_and_benchmark(tmp_path: Path) -> None:
    """The issue's "done when": phc cells and labels as .npy files → import → smoke search and
    smoke benchmark on them; the imported splits are used whole, the pretraining splits generated."""
    rng = np.random.default_rng(11)
    x = PHC.target_inputs(rng, 90)
    y = PHC.target_labels(x)
    for split, part in (("train", slice(0, 60)), ("val", slice(60, 75)), ("test", slice(75, 90))):
        np.save(tmp_path / f"{split}_x.npy", x[part])
        np.save(tmp_path / f"{split}_y.npy", y[part])
        done = _import("--problem", "phc", "--data-dir", str(tmp_path / "data"), "--name", "mine", "--split", split,
                       "--inputs", str(tmp_path / f"{split}_x.npy"), "--labels", str(tmp_path / f"{split}_y.npy"))
        assert done.returncode == 0, done.stderr
    imported = _tree(tmp_path / "data" / "mine")

    def run(module: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"sibcl_ray.{module}", "--problem", "phc", "--preset", "smoke",
                               "--dataset", "mine", "--data-dir", str(tmp_path / "data"), *args], cwd=tmp_path,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=900)

    search = run("tune", "--num-samples", "1", "--output", str(tmp_path / "search"))
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    assert "data: train 60, val 15, test 15 imported from" in search.stdout
    summary = json.loads((tmp_path / "search" / "summary.json").read_text())
    assert summary["n_test"] == 15 and summary["imported_dataset"] == str(tmp_path / "data" / "mine")
    assert math.isfinite(summary["test_error"]) and summary["nsam"] == 50

    # sl needs only the imported splits (the search above already generated the pretraining ones)
    bench = run("benchmark", "--methods", "sl", "--nsam", "20,60", "--seeds", "1", "--output", str(tmp_path / "bench"))
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    cells = json.loads((tmp_path / "bench" / "results.json").read_text())["cells"]
    assert sorted((c["method"], c["nsam"], c["n_test"]) for c in cells) == [("sl", 20, 15), ("sl", 60, 15)]
    too_many = run("benchmark", "--methods", "sl", "--nsam", "61", "--output", str(tmp_path / "bench2"))
    assert too_many.returncode == 2 and too_many.stderr.strip() == (
        "error: --nsam 61 is more than the 60 labelled samples of split 'train' of dataset 'mine': give --nsam at most 60")
    assert _tree(tmp_path / "data" / "mine") == imported  # runs read imported data, never touch it
