"""Checkpoint folders a stopped run leaves behind: a cut-short upload must not sink the restored trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sibcl_ray.errors import CheckpointError
from sibcl_ray.train.checkpoints import STATE_FILE, load_state
from sibcl_ray.train.runs import finished_run_metrics


def _save(folder: Path, epochs_done: int) -> Path:
    folder.mkdir(parents=True)
    state = {"model": {"w": torch.ones(300, 300)}, "epochs_done": epochs_done, "best_val": 0.07, "best_epoch": 4}
    torch.save(state, folder / STATE_FILE)
    return folder / STATE_FILE


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run whose newest checkpoint folder was cut short mid-copy (as a Ctrl-C leaves it)."""
    _save(tmp_path / "checkpoint_2026-11-24_04-18-31.559727", epochs_done=6)
    whole = _save(tmp_path / "checkpoint_2026-11-24_04-18-32.150348", epochs_done=6).read_bytes()
    (tmp_path / "checkpoint_2026-11-24_04-18-32.150348" / STATE_FILE).write_bytes(whole[: len(whole) // 2])
    (tmp_path / "checkpoint_2026-11-24_04-18-33.000000").mkdir()  # created, nothing copied yet
    return tmp_path


def test_cut_short_checkpoint_is_a_one_line_checkpoint_error(run_dir: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_state(run_dir / "checkpoint_2026-11-24_04-18-32.150348")
    message = str(err.value)
    assert "\n" not in message and "checkpoint_2026-11-24_04-18-32.150348" in message and "unreadable" in message
    with pytest.raises(CheckpointError, match="has no state.pt"):
        load_state(run_dir / "checkpoint_2026-11-24_04-18-33.000000")


@pytest.mark.parametrize("kept_bytes", [0, 1, 1000])
def test_any_cut_of_state_file_is_a_checkpoint_error(tmp_path: Path, kept_bytes: int) -> None:
    state_file = _save(tmp_path / "checkpoint_x", epochs_done=1)
    state_file.write_bytes(state_file.read_bytes()[:kept_bytes])  # torch fails differently at each length
    with pytest.raises(CheckpointError, match="unreadable"):
        load_state(tmp_path / "checkpoint_x")


def test_finished_run_is_found_behind_cut_short_checkpoints(run_dir: Path) -> None:
    metrics = finished_run_metrics(str(run_dir), total_epochs=6)
    assert metrics is not None and metrics["checkpoint_path"].endswith("checkpoint_2026-11-24_04-18-31.559727")
    assert metrics["val_error"] == 0.07 and metrics["best_finetune_epoch"] == 4 and metrics["training_complete"]
    assert finished_run_metrics(str(run_dir), total_epochs=7) is None  # the last readable one is not done


def test_readable_state_is_none_for_a_cut_checkpoint(tmp_path: Path) -> None:
    from sibcl_ray.train.checkpoints import readable_state

    (tmp_path / "state.pt").write_bytes(b"\x80\x02cut")  # a state.pt whose copy stopped early
    assert readable_state(tmp_path) is None
    assert readable_state(tmp_path / "missing") is None
