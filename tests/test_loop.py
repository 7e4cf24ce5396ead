"""Parts of ``train.loop`` between two reports, without Ray: the fine-tuning replicas (a trial
fine-tunes one pretrained network with several seeds, is scored by their mean, and keeps the
best replica's best epoch), and a pretraining epoch's steps and optimizers."""

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


def test_sibcl_pretrains_with_one_adam_per_kind_of_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIB-CL epoch (10 contrastive steps, then 4 surrogate steps here) updates through two
    Adams, as the reference: each one's moment estimates come from its own kind of step only."""
    from sibcl_ray.train import loop

    order: list[str] = []
    for step_name, kind in (("contrastive_step", "C"), ("supervised_step", "S")):
        real = getattr(loop, step_name)
        monkeypatch.setattr(loop, step_name, lambda *a, _real=real, _kind=kind, **k: order.append(_kind) or _real(*a, **k))
    problem = get_problem("phc")
    gen = torch.Generator().manual_seed(0)
    data = {"unlabeled": {"x": torch.rand(40, *problem.input_shape, generator=gen)},
            "surrogate": {"x": torch.rand(30, *problem.input_shape, generator=gen),
                          "y": 0.1 * torch.randn(30, problem.label_dim, generator=gen)}}
    hp = with_defaults({"batch_size": 8})
    net = SIBCLNet(problem.model_spec("small"), problem.label_dim)
    opts = loop.PretrainOptimizers.for_method(net, get_method("sibcl"), hp["lr_pretrain"])
    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    out = loop._pretrain_steps(net, opts, data, get_method("sibcl"), hp, augment, gen,
                               Losses(problem, {"method": "sibcl", "hparams": hp}), 1, 10, 4, FLOAT32)

    assert "".join(order) == "C" * 10 + "S" * 4
    assert np.isfinite(out["contrastive_loss"]) and np.isfinite(out["surrogate_loss"])
    encoder, projector, predictor = (next(getattr(net, part).parameters()) for part in ("encoder", "projector", "predictor"))
    assert opts.contrastive is not opts.surrogate
    assert int(opts.contrastive.state[encoder]["step"]) == 10 and predictor not in opts.contrastive.state
    assert int(opts.surrogate.state[encoder]["step"]) == 4 and projector not in opts.surrogate.state


def test_pretraining_optimizers_round_trip_and_read_a_one_optimizer_checkpoint() -> None:
    from sibcl_ray.train.loop import PretrainOptimizers

    problem = get_problem("phc")
    net = SIBCLNet(problem.model_spec("small"), problem.label_dim)
    tl = PretrainOptimizers.for_method(net, get_method("tl"), 1e-3)
    assert tl.contrastive is tl.surrogate  # one kind of step, one optimizer
    sibcl = PretrainOptimizers.for_method(net, get_method("sibcl"), 1e-3)
    net(torch.rand(4, *problem.input_shape)).sum().backward()
    sibcl.surrogate.step()
    again = PretrainOptimizers.for_method(net, get_method("sibcl"), 1e-3)
    again.load_state_dict(sibcl.state_dict())
    assert again.state_dict()["surrogate"]["state"].keys() == sibcl.state_dict()["surrogate"]["state"].keys() != set()
    assert again.state_dict()["contrastive"]["state"] == {}
    old = PretrainOptimizers.for_method(net, get_method("sibcl"), 1e-3)
    old.load_state_dict(sibcl.surrogate.state_dict())  # a checkpoint from before the pair: one Adam's state
    assert old.contrastive.state_dict()["state"].keys() == sibcl.surrogate.state_dict()["state"].keys()


def test_a_method_checks_its_own_switches() -> None:
    from sibcl_ray.train.methods import Method

    with pytest.raises(ValueError, match="shares a twin"):
        Method("y-al", contrastive=True, contrastive_surrogate=False, surrogate_supervised=False,
               augment_labelled=False, selects=True)
