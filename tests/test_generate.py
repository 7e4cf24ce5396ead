"""Resumable label generation on real Ray, real solvers, real Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sibcl_ray.data import shards
from sibcl_ray.data.generate import generate
from sibcl_ray.errors import ShardError

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
