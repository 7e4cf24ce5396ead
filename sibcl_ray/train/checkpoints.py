"""The one checkpoint format: a ``state.pt`` with model, optimisers and the selected model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


def load_state(checkpoint: Any) -> dict[str, Any]:
    """The saved state of a Ray ``Checkpoint`` or of a checkpoint folder path."""
    if isinstance(checkpoint, (str, Path)):
        return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
