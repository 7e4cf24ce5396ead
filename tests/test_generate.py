"""Resumable label generation on real Ray, real solvers, real Parquet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sibcl_ray.data import shards
from sibcl_ray.data.generate import generate
from sibcl_ray.errors import ShardError
from sibcl_ray.problems import get_problem

pytestmark = pytest.mark.usefixtures("ray_session")
COUNTS = {"unlabeled": 20, "surrogate": 20, "train": 20}


def _generate(root: Path, **kwargs: object):
    return generate("phc", {}, COUNTS, root, seed=1, shard_size=10, progress=False, **kwargs)


def test_generation_writes_verified_shards_and_is_resumable(tmp_path: Path) -> None:
    first = _generate(tmp_path)
    assert first.samples_computed == {"unlabeled": 20, "surrogate": 20, "train": 20}
    train = shards.read_split(first.paths["train"], 20)
    assert train["x"].shape == (20, 32, 32) and train["y"].shape == (20, 400)
    assert np.array_equal(train["index"], np.arange(20))
    assert 1 <= train["x"].min() and train["x"].max() <= 20
    assert np.all(np.isfinite(train["y"]))
    assert "y" not in pq.read_schema(first.paths["unlabeled"][0]).names
    manifest = json.loads((first.root / "train" / shards.MANIFEST).read_text())
    assert sorted(manifest["shards"]) == ["shard-00000.parquet", "shard-00001.parquet"]

    # a second run computes nothing; deleting one shard recomputes exactly that one, identically
    assert _generate(tmp_path).samples_computed == {}
    before = pq.read_table(first.paths["train"][1])
    first.paths["train"][1].unlink()
    again = _generate(tmp_path)
    assert again.samples_computed == {"train": 10}
    assert pq.read_table(again.paths["train"][1]).equals(before)

    # a shard written by a killed run but never recorded is adopted, not recomputed
    manifest["shards"].pop("shard-00000.parquet")
    (first.root / "train" / shards.MANIFEST).write_text(json.dumps(manifest))
    assert _generate(tmp_path).samples_computed == {}


def test_corrupt_shard_is_named_and_only_replaced_on_request(tmp_path: Path) -> None:
    report = _generate(tmp_path)
    victim = report.paths["surrogate"][0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ShardError, match=f"{victim}.*--repair"):
        _generate(tmp_path)
    with pytest.raises(ShardError, match=str(victim)):
        shards.verified_shards(victim.parent, 20, 10, labelled=True)
    repaired = _generate(tmp_path, repair=True)
    assert repaired.samples_computed == {"surrogate": 10}
    assert victim.with_suffix(".parquet.corrupt").read_bytes() == data[: len(data) // 2]  # kept, not lost
    assert shards.read_split(repaired.paths["surrogate"], 20)["y"].shape == (20, 400)


def test_larger_request_reuses_existing_shards(tmp_path: Path) -> None:
    _generate(tmp_path)
    bigger = generate("phc", {}, {"unlabeled": 30}, tmp_path, seed=1, shard_size=10, progress=False)
    assert bigger.samples_computed == {"unlabeled": 10}


def test_a_preset_with_another_shard_size_reuses_and_extends_the_split(tmp_path: Path) -> None:
    """`--preset smoke` (shards of 50) after `quick` (100) in one data dir: reuse, never refuse."""
    _generate(tmp_path)  # shards of 10
    smaller = generate("phc", {}, {"train": 15}, tmp_path, seed=1, shard_size=5, progress=False)
    assert smaller.samples_computed == {} and len(smaller.paths["train"]) == 2
    assert np.array_equal(shards.read_split(smaller.paths["train"], 15)["index"], np.arange(15))
    bigger = generate("phc", {}, {"train": 35}, tmp_path, seed=1, shard_size=5, progress=False)
    assert bigger.samples_computed == {"train": 20}  # two more shards, in the split's own size
    manifest = json.loads((bigger.root / "train" / shards.MANIFEST).read_text())
    assert manifest["shard_size"] == 10 and {e["rows"] for e in manifest["shards"].values()} == {10}

    # a manifest from before the shard_size key: the size is read off its entries
    manifest.pop("shard_size")
    (bigger.root / "train" / shards.MANIFEST).write_text(json.dumps(manifest))
    assert generate("phc", {}, {"train": 40}, tmp_path, seed=1, shard_size=5, progress=False).samples_computed == {}


def test_a_manifest_that_disagrees_with_its_shards_never_advises_repair(tmp_path: Path) -> None:
    report = _generate(tmp_path)
    path = report.root / "train" / shards.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["shards"]["shard-00001.parquet"]["rows"] = 7  # edited by hand; the shard itself is fine
    path.write_text(json.dumps(manifest))
    before = {p.name: p.read_bytes() for p in (report.root / "train").glob("*.parquet")}
    with pytest.raises(ShardError) as info:
        _generate(tmp_path, repair=True)
    assert "--repair" not in str(info.value) and "no shard was touched" in str(info.value)
    assert {p.name: p.read_bytes() for p in (report.root / "train").glob("*.parquet")} == before


def test_a_truncated_manifest_is_named_and_following_the_advice_loses_nothing(tmp_path: Path) -> None:
    report = _generate(tmp_path)
    path = report.root / "train" / shards.MANIFEST
    recorded = json.loads(path.read_text())
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut short by hand (or by a crashed editor)
    before = _shard_files(report.root / "train")
    with pytest.raises(ShardError) as info:
        _generate(tmp_path)
    assert f"manifest {path} is not valid JSON" in str(info.value) and "delete it to rebuild it" in str(info.value)
    assert "--repair" not in str(info.value) and _shard_files(report.root / "train") == before
    path.unlink()  # the advice: the shards are checked one by one and adopted, none recomputed
    assert _generate(tmp_path).samples_computed == {}
    assert json.loads(path.read_text())["shards"] == recorded["shards"]


def _mount_namespaces_work() -> bool:
    """A private mount namespace (as root, or through a user namespace) lets a test mount a tmpfs."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as point:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {point}"], capture_output=True)
    return probe.returncode == 0


def _generate_command(data_dir: Path, count: int, split: str = "surrogate") -> str:
    return (f"{sys.executable} -m sibcl_ray.generate --problem phc --preset smoke --splits {split} "
            f"--count {split}={count} --data-dir {data_dir} --num-cpus 1")


def _shard_files(split_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(split_dir.iterdir()) if p.name != ".lock"}


@pytest.mark.slow
@pytest.mark.skipif(not _mount_namespaces_work(), reason="needs a mount namespace (unshare -rm) to mount a small tmpfs")
def test_disk_full_mid_generation_keeps_the_finished_shards_and_a_rerun_completes(tmp_path: Path) -> None:
    """A real full disk (a tmpfs with room for two and a half shards) under the real command:
    one error line, no partial file, the finished shards recorded; after space is freed the
    same command computes only the rest. Then the disk goes read-only: refused before Ray."""
    problem = get_problem("phc")
    x, y = problem.surrogate_samples(np.random.default_rng(shards.shard_seed(0, "surrogate", 0)), 50)
    shards.write_shard(tmp_path / "probe.parquet", 0, x, y)
    room_kib = int(2.5 * (tmp_path / "probe.parquet").stat().st_size / 1024)
    disk, out = tmp_path / "disk", tmp_path / "out"
    command = _generate_command(disk, 200)
    script = f"""
mount -t tmpfs -o size={room_kib}k tmpfs {disk}
{command} >{out}/full.out 2>{out}/full.err; echo $? >{out}/full.rc
mkdir {out}/full && cp -a {disk}/. {out}/full/
mount -o remount,size=64m {disk}
{command} >{out}/rerun.out 2>{out}/rerun.err; echo $? >{out}/rerun.rc
mkdir {out}/rerun && cp -a {disk}/. {out}/rerun/
mount -o remount,ro {disk}
{_generate_command(disk, 300)} >{out}/ro.out 2>{out}/ro.err; echo $? >{out}/ro.rc
mkdir {out}/ro && cp -a {disk}/. {out}/ro/
"""
    disk.mkdir()
    out.mkdir()
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=600,
                   env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=Path(__file__).parents[1])

    # the full disk: exit 2, one error line naming the shard and the cause, no traceback
    full_err = (out / "full.err").read_text()
    assert (out / "full.rc").read_text().strip() == "2", full_err[-2000:]
    errors = [line for line in full_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in full_err, full_err[-2000:]
    assert "stopped at shard" in errors[0] and "No space left on device" in errors[0] and "--repair" not in errors[0]
    split_dir = next((out / "full").glob("phc-*/surrogate"))
    manifest = shards.read_manifest(split_dir)["shards"]
    files = _shard_files(split_dir)
    assert not [name for name in files if name.endswith(".tmp")], files.keys()  # no half shard left behind
    good = [name for name in files if name.endswith(".parquet")]
    assert 1 <= len(manifest) <= len(good) < 4
    for index, name in enumerate(sorted(good)):  # every shard there is whole: recorded or adoptable
        assert shards.check_shard(split_dir / name, manifest.get(name), 50 * index, 50, labelled=True) is None

    # space freed: the same command computes exactly the missing shards
    rerun = (out / "rerun.out").read_text()
    assert (out / "rerun.rc").read_text().strip() == "0", (out / "rerun.err").read_text()[-2000:]
    summary = json.loads(rerun[rerun.index("{"): rerun.rindex("}") + 1])
    assert summary["samples_computed"] == {"surrogate": 200 - 50 * len(good)}
    rerun_dir = next((out / "rerun").glob("phc-*/surrogate"))
    data = shards.read_split(shards.verified_shards(rerun_dir, 200, 50, labelled=True), 200)
    assert np.array_equal(data["index"], np.arange(200)) and np.all(np.isfinite(data["y"]))
    assert np.array_equal(data["x"][:50], x) and np.array_equal(data["y"][:50], y)  # the same samples as the seed gives

    # a read-only disk: refused in one line before Ray starts, the data untouched
    ro_err = (out / "ro.err").read_text()
    assert (out / "ro.rc").read_text().strip() == "2" and ro_err.startswith("error:") and "not writable" in ro_err
    assert "Ray dashboard" not in (out / "ro.out").read_text()
    assert _shard_files(next((out / "ro").glob("phc-*/surrogate"))) == _shard_files(rerun_dir)


@pytest.mark.slow
def test_two_generation_runs_into_one_data_dir_compute_each_shard_once(tmp_path: Path) -> None:
    """The second of two concurrent commands waits on the dataset's lock, then finds nothing to do."""
    command = _generate_command(tmp_path, 200, split="test").split()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not any(tmp_path.glob("phc-*/test/shard-*.parquet")):  # the first holds the lock and is labelling
        assert first.poll() is None and time.monotonic() < deadline, "the first run ended before its first shard"
        time.sleep(0.2)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    first_out, _ = first.communicate(timeout=400)
    assert first.returncode == 0 and second.returncode == 0, (first_out[-2000:], second.stderr[-2000:])
    summaries = [json.loads(text[text.index("{"): text.rindex("}") + 1]) for text in (first_out, second.stdout)]
    assert summaries[0]["samples_computed"] == {"test": 200} and summaries[1]["samples_computed"] == {}
    assert "waiting for another generation run" in second.stdout
    split_dir = next(tmp_path.glob("phc-*/test"))
    assert len(shards.read_manifest(split_dir)["shards"]) == 4
    assert len(shards.verified_shards(split_dir, 200, 50, labelled=True)) == 4
