"""The fine-tuning replicas of ``train.loop``: a trial fine-tunes one pretrained network with
several seeds, is scored by their mean, and keeps the best replica's best epoch (no Ray here:
``_finetune_replicas`` is the part of the loop between two reports)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.steps import FLOAT32
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.problems import get_problem
from sibcl_ray.train.hparams import with_defaults
from sibcl_ray.train.loop import FineTuneReplica, Losses, _finetune_replicas, _val_error
from sibcl_ray.train.methods import get_method


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_replicas_are_scored_by_their_mean_and_the_best_one_is_kept() -> None:
    problem = get_problem("phc")
    torch.manual_seed(0)
    pretrained = SIBCLNet(problem.model_spec("small"), problem.label_dim)
    gen = torch.Generator().manual_seed(1)
    data = {"train": {"x": torch.rand(24, *problem.input_shape, generator=gen),
                      "y": 0.1 * torch.randn(24, problem.label_dim, generator=gen)},
            "val": {"x": torch.rand(16, *problem.input_shape, generator=gen),
                    "y": 0.1 * torch.randn(16, problem.label_dim, generator=gen)}}
    hp = with_defaults({"finetune_batch_size": 8})
    replicas = []
    for seed in range(3):
        net = SIBCLNet(problem.model_spec("small"), problem.label_dim)
        net.load_state_dict(pretrained.state_dict())
        replicas.append(FineTuneReplica.new(net, hp, torch.Generator().manual_seed(100 + seed)))
    state = {"best_val": float("inf"), "best_epoch": -1, "best_model": None,
             "seed_best_val": [float("inf")] * 3, "seed_best_epoch": [-1] * 3}
    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    losses = Losses(problem, {"method": "sibcl", "hparams": hp})
    for epoch in range(1, 4):
        metrics = _finetune_replicas(replicas, data, problem, get_method("sibcl"), hp, augment, losses, epoch,
                                     FLOAT32, state, epoch)

    assert losses.problem is None
    assert len(set(state["seed_best_val"])) == 3  # the seeds trained differently
    assert metrics["val_error"] == pytest.approx(np.mean(state["seed_best_val"])) == state["best_val"]
    assert metrics["val_error_seed_spread"] == pytest.approx(np.ptp(state["seed_best_val"]))
    best = int(np.argmin(state["seed_best_val"]))
    assert state["best_epoch"] == state["seed_best_epoch"][best]
    kept = SIBCLNet(problem.model_spec("small"), problem.label_dim)
    kept.load_state_dict(state["best_model"])
    assert _val_error(kept, problem, data["val"]) == pytest.approx(state["seed_best_val"][best], rel=1e-5)


def test_a_method_checks_its_own_switches() -> None:
    from sibcl_ray.train.methods import Method

    with pytest.raises(ValueError, match="shares a twin"):
        Method("y-al", contrastive=True, contrastive_surrogate=False, surrogate_supervised=False,
               augment_labelled=False, selects=True)
    assert [m for m in ("sibcl", "sibcl-al", "tl-al", "sl") if get_method(m).in_paper] == ["sibcl", "sl"]
