"""The one checkpoint format: a ``state.pt`` with model, optimisers and the selected model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sibcl_ray import storage

STATE_FILE = "state.pt"


def load_state(checkpoint: Any) -> dict[str, Any]:
    """The saved state of a Ray ``Checkpoint``, or of a checkpoint folder (local path or URI)."""
    if isinstance(checkpoint, (str, Path)):
        state = storage.load_torch(storage.join(str(checkpoint), STATE_FILE))
        if state is None:
            raise FileNotFoundError(f"no {STATE_FILE} in checkpoint {checkpoint}")
        return state
    with checkpoint.as_directory() as folder:
        return load_state(folder)
