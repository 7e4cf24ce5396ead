"""The one checkpoint format: a ``state.pt`` with model, optimisers and the selected model."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from sibcl_ray import storage
from sibcl_ray.errors import CheckpointError

STATE_FILE = "state.pt"


def load_state(checkpoint: Any) -> dict[str, Any]:
    """The saved state of a Ray ``Checkpoint``, or of a checkpoint folder (local path or URI).

    A folder whose copy into storage was cut short (the driver stopped mid-upload) holds a
    missing or truncated ``state.pt``; that is a :class:`CheckpointError` naming the folder,
    so callers can fall back to an earlier checkpoint instead of failing deep inside torch.
    """
    if isinstance(checkpoint, (str, Path)):
        location = storage.join(str(checkpoint), STATE_FILE)
        try:
            state = storage.load_torch(location)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as err:  # what torch.load raises on a cut file
            raise CheckpointError(f"checkpoint {location} is unreadable ({type(err).__name__}); "
                                  "it was probably cut short when its run stopped") from None
        if state is None:
            raise CheckpointError(f"checkpoint {checkpoint} has no {STATE_FILE}")
        return state
    with checkpoint.as_directory() as folder:
        return load_state(folder)


def selected_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The model a run selected (its best-validation epoch), or its last weights when it never validated."""
    return state["best_model"] if state.get("best_model") is not None else state["model"]


def readable_state(checkpoint: Any) -> dict[str, Any] | None:
    """:func:`load_state`, or None for a checkpoint whose copy was cut short (Train never
    registered it): what code that scans a run's checkpoint folders wants."""
    try:
        return load_state(checkpoint)
    except CheckpointError:
        return None
