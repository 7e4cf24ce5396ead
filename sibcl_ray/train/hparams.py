"""The hyperparameters a trial takes, their defaults and allowed ranges.

This is the single list a search space is checked against: a search-space key that is
not here is refused, and a parameter a search space leaves out takes its default.
"""

from __future__ import annotations

from typing import Any

#: name → (default, kind, low, high). Defaults are the reference's values (docs/method.md).
HPARAMS: dict[str, tuple[Any, type, float, float]] = {
    "temperature": (0.1, float, 1e-3, 10.0),
    "aug_strength": (1.0, float, 0.0, 1.0),
    "mix_ratio": (1 / 3, float, 0.0, 0.95),
    "lr_pretrain": (1e-3, float, 1e-6, 1.0),
    "lr_finetune": (1e-3, float, 1e-6, 1.0),
    "batch_size": (96, int, 4, 8192),
    "finetune_batch_size": (32, int, 1, 8192),
    # Δ-learning on the problem's per-input cheap label (the method's ``-mf`` variant); only for a
    # problem that declares one (``Problem.cheap_label``)
    "multifidelity": (False, bool, 0, 1),
}


def with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` completed by the defaults, cast to each parameter's type."""
    out = {name: spec[0] for name, spec in HPARAMS.items()}
    for name, value in values.items():
        out[name] = HPARAMS[name][1](value)
    return out


def multifidelity_searched(space: dict[str, Any]) -> bool:
    """Whether a search space (or a config of constants) can turn ``multifidelity`` on."""
    spec = space.get("multifidelity", False)
    return bool(spec) if not isinstance(spec, dict) else any(spec.get("values", []))
