"""The training steps the Train loop runs: batching, the float32 step as it always was, and the
GPU settings (bf16 autocast, channels-last, torch.compile) taken on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from sibcl_ray.learning.losses import nt_xent, supervised_loss
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.steps import (
    FLOAT32,
    StepSettings,
    batches,
    contrastive_split,
    contrastive_step,
    step_batches,
    supervised_step,
)
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.problems import Problem, get_problem

TEMPERATURE = 0.1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(problem: Problem, batch: int = 8) -> tuple[SIBCLNet, torch.Tensor, object]:
    torch.manual_seed(0)
    model = SIBCLNet(problem.model_spec("small"), problem.label_dim)
    x = torch.rand((batch, *problem.input_shape), generator=torch.Generator().manual_seed(1))
    return model, x, make_augmenter(problem.invariances, 1.0, problem.input_range)


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_batches_drop_the_ragged_end_and_step_batches_string_passes_together() -> None:
    gen = torch.Generator().manual_seed(0)
    parts = batches(10, 4, gen)
    assert [len(b) for b in parts] == [4, 4] and len(set(torch.cat(parts).tolist())) == 8
    parts = step_batches(10, 4, 5, gen)  # 20 indices from two shuffled passes over 10
    assert [len(b) for b in parts] == [4] * 5
    flat = torch.cat(parts)
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:].tolist()) == list(range(10))
    assert [len(b) for b in step_batches(3, 8, 2, gen)] == [3, 3]  # a batch never exceeds the data
    again = torch.Generator().manual_seed(0)
    batches(10, 4, again)
    assert all(torch.equal(a, b) for a, b in zip(step_batches(10, 4, 5, again), parts))


def test_contrastive_split_keeps_two_target_inputs() -> None:
    assert contrastive_split(96, 1 / 3) == (64, 32)
    assert contrastive_split(96, 0.0) == (96, 0)
    assert contrastive_split(4, 0.95) == (2, 4)


def test_float32_steps_are_the_loops_old_inline_steps_exactly() -> None:
    """What ``train.loop`` did inline before the steps moved here: same RNG use, loss and update."""
    problem = get_problem("phc")
    model, x, augment = _setup(problem)
    old_model = copy.deepcopy(model)
    opt, old_opt = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (model, old_model))
    gen, old_gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    y = torch.rand(len(x), problem.label_dim)
    for _ in range(2):
        loss = contrastive_step(model, opt, x, augment, gen, TEMPERATURE)
        views = torch.cat([augment(x, old_gen), augment(x, old_gen)])
        z = old_model(views, head="project")
        old = nt_xent(z[: len(x)], z[len(x) :], TEMPERATURE)
        old_opt.zero_grad()
        old.backward()
        old_opt.step()
        assert loss.item() == old.item() and not loss.requires_grad
        loss = supervised_step(model, opt, x, y, problem.surrogate_loss)
        old = supervised_loss(problem.surrogate_loss, old_model(x, head="predict"), y)
        old_opt.zero_grad()
        old.backward()
        old_opt.step()
        assert loss.item() == old.item()
    assert all(torch.equal(a, b) for a, b in zip(_params(model), _params(old_model)))
    assert torch.equal(gen.get_state(), old_gen.get_state())


def test_settings_per_device() -> None:
    assert StepSettings.for_device(torch.device("cpu")) == FLOAT32
    gpu = StepSettings.for_device(torch.device("cuda"), compile=True)  # a description: no GPU needed
    assert gpu == StepSettings(autocast_dtype=torch.bfloat16, channels_last=True, cudnn_benchmark=True,
                               compile="inductor")
    assert gpu.describe() == "bfloat16+channels_last+compile" and FLOAT32.describe() == "float32"


@pytest.mark.parametrize("problem, options, memory_format",
                         [("phc", {}, torch.channels_last), ("tise", {"dim": 3}, torch.channels_last_3d)])
def test_bf16_channels_last_steps_on_cpu_agree_with_float32(problem: str, options: dict,
                                                            memory_format: torch.memory_format) -> None:
    """The GPU path (bf16 autocast + channels-last) run on a CPU: finite, the float32 loss to
    bf16's precision, and an update in the same direction."""
    p = get_problem(problem, **options)
    model, x, augment = _setup(p, batch=6)
    start = _params(model)
    fast_model = copy.deepcopy(model)
    settings = StepSettings(autocast_dtype=torch.bfloat16, channels_last=True)
    fast = settings.prepare(fast_model, p.model_spec("small").dim)
    conv = fast_model.encoder.features[4].weight  # the first has one input channel: both layouts at once
    assert conv.is_contiguous(memory_format=memory_format) and not conv.is_contiguous()
    y = torch.rand(len(x), p.label_dim)
    losses = {}
    for name, net, s in (("float32", model, FLOAT32), ("bf16", fast, settings)):
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(3)
        losses[name] = (contrastive_step(net, opt, x, augment, gen, TEMPERATURE, s),
                        supervised_step(net, opt, x, y, p.finetune_loss, s))
    for exact, approx in zip(losses["float32"], losses["bf16"]):
        assert torch.isfinite(approx) and approx.dtype == torch.float32  # the loss itself is float32
        assert approx.item() == pytest.approx(exact.item(), rel=0.05)
    moved = torch.cat([(a - s).flatten() for a, s in zip(_params(model), start)])
    moved_fast = torch.cat([(a - s).flatten() for a, s in zip(_params(fast_model), start)])
    assert torch.isfinite(moved_fast).all()
    assert torch.nn.functional.cosine_similarity(moved, moved_fast, dim=0) > 0.9


def test_compiled_step_on_cpu_matches_eager() -> None:
    """The compiled path, traced by AOTAutograd as inductor's is (backend 'aot_eager' skips code
    generation, which takes a minute on a CPU)."""
    p = get_problem("tise", dim=2)
    model, x, augment = _setup(p)
    eager_model = copy.deepcopy(model)
    settings = StepSettings(compile="aot_eager")
    compiled = settings.prepare(model, 2)
    assert settings.describe() == "float32+compile(aot_eager)"
    opt, eager_opt = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (model, eager_model))
    gen, eager_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    for _ in range(2):
        loss = contrastive_step(compiled, opt, x, augment, gen, TEMPERATURE, settings)
        eager = contrastive_step(eager_model, eager_opt, x, augment, eager_gen, TEMPERATURE)
        assert loss.item() == pytest.approx(eager.item(), abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(_params(model), _params(eager_model)))
