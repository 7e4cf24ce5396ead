"""FLOP counts per model against closed forms and issue 12's figures; peaks and MFU."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sibcl_ray.learning.flops import (
    SPEC_PEAK_FLOPS,
    conv_flops,
    device_peak_flops,
    matmul_flops,
    mfu,
    model_flops,
    spec_peak_flops,
)
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.problems import get_problem


def test_counter_matches_the_closed_form_per_conv_layer_of_the_small_phc_model() -> None:
    problem = get_problem("phc")
    spec = problem.model_spec("small")
    model = SIBCLNet(spec, problem.label_dim)
    counter = FlopCounterMode(display=False)
    batch = 3
    with counter:  # a real forward pass on the CPU, not the meta device model_flops uses
        model(torch.rand(batch, *problem.input_shape), head="project")
    counts = counter.get_flop_counts()
    counted = [sum(counts[f"SIBCLNet.encoder.features.{4 * i}"].values()) for i in range(len(spec.conv_widths))]
    # by hand: 2 · C_in · C_out · k² · output pixels; kernel 7, widths 16, 32, 64 on 32², 16², 4²
    by_hand = [2 * 1 * 16 * 49 * 32 * 32, 2 * 16 * 32 * 49 * 16 * 16, 2 * 32 * 64 * 49 * 4 * 4]
    assert conv_flops(spec, problem.input_shape) == by_hand
    assert counted == [batch * f for f in by_hand]


def test_three_dimensional_closed_form_matches_the_counter() -> None:
    problem = get_problem("tise", dim=3)
    spec = problem.model_spec("small")
    counter = FlopCounterMode(display=False)
    with torch.device("meta"), counter:
        SIBCLNet(spec, 1).encoder.features(torch.empty(2, 1, *problem.input_shape))
    assert counter.get_total_flops() == 2 * sum(conv_flops(spec, problem.input_shape))


@pytest.mark.parametrize("problem, options, forward_gflop", [("phc", {}, 0.53), ("tise", {"dim": 3}, 73.0)])
def test_reference_models_cost_what_issue_12_counted(problem: str, options: dict, forward_gflop: float) -> None:
    """Issue 12: phc DOS ≈ 0.53 GFLOP per 32² input, tise 3D ≈ 73 GFLOP per 32³ input
    (multiply-add = 2 FLOPs; encoder + projector, the pretraining forward), ≈ 3× that to train."""
    p = get_problem(problem, **options)
    flops = model_flops(p.model_spec("reference"), p.input_shape, p.label_dim)
    assert flops.forward / 1e9 == pytest.approx(forward_gflop, rel=0.01)
    assert 2.9 < flops.train / flops.forward < 3.0  # the first conv needs no input gradient
    assert flops.contrastive_input == 2 * flops.train


def test_predictor_head_is_counted_instead_of_the_projector() -> None:
    p = get_problem("phc")
    spec = p.model_spec("small")
    encoder = sum(conv_flops(spec, p.input_shape))
    project, predict = (model_flops(spec, p.input_shape, p.label_dim, head=h).forward for h in ("project", "predict"))
    assert encoder < project < predict  # the 400-wide DOS predictor outweighs the small projector


def test_peaks_and_mfu() -> None:
    cpu = torch.device("cpu")
    peak = device_peak_flops(cpu, torch.float32)
    assert peak.spec is None and peak.dtype == "float32"
    assert 1e8 < peak.measured < 1e14  # any CPU this runs on
    assert matmul_flops(cpu, torch.float32, size=256, repeats=2) > 0
    assert spec_peak_flops(cpu) is None
    assert SPEC_PEAK_FLOPS["H200"] == 989e12
    assert mfu(1e9, 100.0, 1e12) == pytest.approx(0.1)
