"""The contrastive step both step benchmarks time (``bench_step_ab.py``, ``profile_step.py``).

Imports ``sibcl_ray`` only when called, so ``bench_step_ab.py``'s child processes build the step
from whichever source tree their ``PYTHONPATH`` names, old or new.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

#: Model name → (problem, options), as in bench_training.py.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {"phc": ("phc", {}), "tise2d": ("tise", {"dim": 2}),
                                                  "tise3d": ("tise", {"dim": 3})}


@dataclass
class Step:
    """One model's pretraining step at the reference hyperparameters, on a fixed random batch."""

    problem: Any
    net: Any
    opt: Any
    x: Any
    augment: Any
    gen: Any
    hp: dict[str, Any]
    settings: Any


def build_step(cell: str, batch: int, channels_last: bool | None = None) -> Step:
    """``cell`` is MODEL:SIZE (e.g. tise3d:small); ``channels_last`` overrides the device default."""
    import torch

    from sibcl_ray.learning.models import SIBCLNet
    from sibcl_ray.learning.steps import StepSettings, contrastive_split
    from sibcl_ray.learning.transforms import make_augmenter
    from sibcl_ray.problems import get_problem
    from sibcl_ray.train.hparams import with_defaults

    model_name, size = cell.split(":")
    name, options = MODELS[model_name]
    problem = get_problem(name, **options)
    spec = problem.network_spec(size)
    device = torch.device("cpu")
    takes_dim = "dim" in inspect.signature(StepSettings.for_device).parameters  # the old code's does not
    settings = StepSettings.for_device(device, dim=spec.dim) if takes_dim else StepSettings.for_device(device)
    if channels_last is not None:
        settings = StepSettings(channels_last=channels_last)
    hp = with_defaults({})
    torch.manual_seed(0)
    model = SIBCLNet(spec, problem.label_dim)
    net = settings.prepare(model, spec.dim)
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr_pretrain"])
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((sum(contrastive_split(batch, hp["mix_ratio"])), *problem.input_shape), generator=gen)
    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    return Step(problem, net, opt, x, augment, gen, hp, settings)
