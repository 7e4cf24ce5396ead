"""Multi-fidelity (Δ) learning (issue 29): the cheap label of a problem, its column in the shards and
in imported data, the closed-form fit, the -mf methods through the benchmark, the predictor that
computes the cheap label itself, and the one-line refusals for a problem without one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import sibcl_ray
from sibcl_ray.benchmark.run import fit_cell
from sibcl_ray.data import shards
from sibcl_ray.data.generate import generate, prepare
from sibcl_ray.data.imported import import_split, open_dataset
from sibcl_ray.learning.fidelity import CheapFit
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.physics import schrodinger
from sibcl_ray.predictor import INFO_FILE, export_model, model_info
from sibcl_ray.presets import get_preset
from sibcl_ray.problems import get_problem
from sibcl_ray.search.space import load_space
from sibcl_ray.train.methods import METHODS

TISE2 = get_problem("tise", dim=2)


def _run(module: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"sibcl_ray.{module}", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=timeout)


def _column_digests(path: Path) -> dict[str, str]:
    """SHA-256 of each column's values in a shard (the file's own checksum changes with a new column)."""
    table = pq.read_table(path)
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        values = column.to_numpy_ndarray() if hasattr(column, "to_numpy_ndarray") else column.to_numpy()
        out[name] = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
    return out


# --- the cheap label of tise: closed forms ---------------------------------------------------------------

@pytest.mark.parametrize("dim", [2, 3])
def test_tise_cheap_label_is_the_coarse_box_and_shifts_with_a_constant_potential(dim: int) -> None:
    problem = get_problem("tise", dim=dim)
    flat = np.zeros((2, *problem.input_shape), np.float32)
    flat[1] += 0.25
    cheap = problem.cheap_labels(flat)
    assert cheap.shape == (2, 1) and cheap.dtype == np.float32
    # V = 0: the lowest eigenvalue of −½∇² on the 5^d grid's 3^d interior, in closed form
    assert cheap[0, 0] == pytest.approx(schrodinger.box_energy(dim, n=schrodinger.LOWRES_N), rel=1e-6)
    assert cheap[1, 0] - cheap[0, 0] == pytest.approx(0.25, abs=1e-6)  # a constant shifts every level


def test_tise_cheap_label_is_point_group_invariant_and_tracks_the_target() -> None:
    x = TISE2.target_inputs(np.random.default_rng(3), 40)
    cheap = TISE2.cheap_labels(x)
    augment = make_augmenter(("point_group",), 1.0, TISE2.input_range)
    turned = augment(torch.from_numpy(x), torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(TISE2.cheap_labels(turned), cheap, rtol=1e-5)
    target = TISE2.target_labels(x)
    assert np.corrcoef(cheap[:, 0], target[:, 0])[0, 1] > 0.97  # what makes the fit worth having


# --- the closed-form fit -------------------------------------------------------------------------------------

def test_fit_recovers_a_known_quadratic_map_and_its_physical_coefficients() -> None:
    rng = np.random.default_rng(0)
    c = rng.uniform(0.2, 3.0, size=(60, 1))
    y = np.concatenate([0.7 - 1.3 * c + 0.45 * c**2, 2.0 + 0.5 * c], axis=1)
    fit = CheapFit.fit(c, y)
    np.testing.assert_allclose(fit.physical(), [[0.7, 2.0], [-1.3, 0.5], [0.45, 0.0]], atol=1e-9)
    np.testing.assert_allclose(fit.predict(c), y, atol=1e-9)
    assert CheapFit.from_dict(json.loads(json.dumps(fit.to_dict()))).predict(c) == pytest.approx(fit.predict(c))
    with pytest.raises(ValueError, match="do not fit"):
        CheapFit.fit(c[:, 0], y)


def test_fit_mf_cell_recovers_a_quadratic_map_on_the_training_samples_only() -> None:
    rng = np.random.default_rng(1)

    def split(n: int, noise: float) -> dict[str, np.ndarray]:
        c = rng.uniform(0.3, 2.0, size=(n, 1)).astype(np.float32)
        return {"c": c, "y": (0.5 + 2.0 * c + 0.3 * c**2 + noise).astype(np.float32)}

    train, val, test = split(50, 0.0), split(20, 0.0), split(30, 0.0)
    cell = fit_cell(TISE2, train, val, test)
    assert cell["test_error"] < 1e-6 and cell["val_error"] < 1e-6 and cell["n_test"] == 30
    np.testing.assert_allclose(np.ravel(cell["fit"]["physical_coef"]), [0.5, 2.0, 0.3], atol=1e-4)
    shifted = fit_cell(TISE2, train, val, {"c": test["c"], "y": test["y"] + 1.0})  # test labels are never fitted
    assert shifted["test_error"] > 0.1


# --- the network and the predictor ------------------------------------------------------------------------------

def test_predict_on_a_multifidelity_model_is_network_plus_fit_by_hand(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = TISE2.network_spec("small")
    net = SIBCLNet(spec, 1, cheap_dim=1)
    x = TISE2.target_inputs(np.random.default_rng(5), 6)
    fit = CheapFit.fit(TISE2.cheap_labels(x), TISE2.target_labels(x) - TISE2.label_offset())
    net.set_fit(fit)
    with torch.no_grad():
        torch.nn.init.normal_(net.predictor[-1].weight, std=0.5)  # a trained residual, not the zero it starts at
        torch.nn.init.normal_(net.predictor[-1].bias, std=0.5)
        net(torch.rand(16, 32, 32), head="surrogate")  # BatchNorm running statistics that are not the identity
    net.eval()
    info = model_info(problem_name="tise", problem_options={"dim": 2}, model_size="small", method="sl-mf",
                      hparams={}, metrics={}, nsam=6, seed=0)
    export_model(tmp_path / "model", net.state_dict(), info)
    recorded = json.loads((tmp_path / "model" / INFO_FILE).read_text())["cheap_label"]
    assert recorded["what"] == TISE2.cheap_label

    inputs = TISE2.target_inputs(np.random.default_rng(6), 7)
    predicted = sibcl_ray.load_model(tmp_path / "model", device="cpu").predict(inputs, batch_size=3)
    # by hand: the encoder, the predictor on [representation, standardised E_lo], plus a + b·E_lo + d·E_lo²
    e_lo = schrodinger.lowres_energies(inputs.astype(np.float64))
    z = (e_lo - recorded["center"]) / recorded["scale"]
    with torch.no_grad():
        h = net.encoder(torch.from_numpy(inputs))  # tise inputs are already in [0, 1]
        residual = net.predictor(torch.cat([h, torch.from_numpy(z[:, None]).float()], dim=1)).double().numpy()[:, 0]
    assert np.abs(residual).min() > 1e-4  # the network's part is there to be checked
    a, b, d = np.ravel(recorded["physical_coef"])
    np.testing.assert_allclose(predicted[:, 0], residual + a + b * e_lo + d * e_lo**2, rtol=0, atol=1e-6)


def test_a_plain_pretrained_network_loads_into_a_multifidelity_one_as_its_surrogate_head() -> None:
    torch.manual_seed(1)
    spec = TISE2.network_spec("small")
    plain = SIBCLNet(spec, 1)
    mf = SIBCLNet(spec, 1, cheap_dim=1)
    fresh = {k: v.clone() for k, v in mf.state_dict().items() if k.startswith("predictor.")}
    mf.load_pretrained(plain.state_dict())
    x = torch.rand(4, 32, 32)
    plain.eval(), mf.eval()
    with torch.no_grad():
        assert torch.equal(mf(x, head="surrogate"), plain(x, head="predict"))
        assert torch.equal(mf(x, head="project"), plain(x, head="project"))
    assert all(torch.equal(mf.state_dict()[k], v) for k, v in fresh.items())  # fine-tuning's own head


# --- shards: the column, generated, added to an old dataset, imported -------------------------------------------

@pytest.mark.usefixtures("ray_session")
def test_an_old_dataset_gains_the_cheap_column_and_nothing_else_is_recomputed(tmp_path: Path) -> None:
    counts = {"train": 20, "val": 10, "unlabeled": 10}
    old = generate("tise", {"dim": 2}, counts, tmp_path, seed=2, shard_size=10, progress=False)
    assert not any(shards.CHEAP in pq.read_schema(p).names for ps in old.paths.values() for p in ps)
    before = {p: _column_digests(p) for ps in old.paths.values() for p in ps}

    again = generate("tise", {"dim": 2}, counts, tmp_path, seed=2, shard_size=10, progress=False, cheap=True)
    assert again.samples_computed == {}  # no target label solved again
    assert again.cheap_added == {"train": 20, "val": 10}  # the labelled splits only
    for path, digests in before.items():
        now = _column_digests(path)
        assert {k: now[k] for k in digests} == digests  # index, x and y exactly as they were
        assert (shards.CHEAP in now) == (path.parent.name != "unlabeled")
    train = shards.read_split(again.paths["train"], 20)
    np.testing.assert_array_equal(train["c"], TISE2.cheap_labels(train["x"]))
    # the manifest holds the rewritten files' checksums: they verify, and a third run does nothing
    manifest = json.loads((again.root / "train" / shards.MANIFEST).read_text())
    assert all(shards.CHEAP in e["columns"] for e in manifest["shards"].values())
    third = generate("tise", {"dim": 2}, counts, tmp_path, seed=2, shard_size=10, progress=False, cheap=True)
    assert third.samples_computed == {} and third.cheap_added == {}

    # a new split made with cheap=True carries it from the start, and round-trips through Parquet
    fresh = generate("tise", {"dim": 2}, {"test": 10}, tmp_path, seed=2, shard_size=10, progress=False, cheap=True)
    test = shards.read_split(fresh.paths["test"], 10)
    assert fresh.samples_computed == {"test": 10} and test["c"].shape == (10, 1)
    np.testing.assert_array_equal(test["c"], TISE2.cheap_labels(test["x"]))


def test_import_computes_the_cheap_label_and_an_old_import_gains_it(tmp_path: Path) -> None:
    x = TISE2.target_inputs(np.random.default_rng(8), 12)
    y = TISE2.target_labels(x)
    np.save(tmp_path / "x.npy", x), np.save(tmp_path / "y.npy", y)
    done = _run("import", "--problem", "tise", "--dim", "2", "--name", "mine", "--split", "train", "--inputs",
                str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    dataset = open_dataset(tmp_path / "data", "mine", TISE2)
    stored = shards.read_split(dataset.splits["train"][0], 12)
    np.testing.assert_array_equal(stored["c"], TISE2.cheap_labels(x))
    np.testing.assert_array_equal(stored["y"], y)

    # an import made before the column existed (written here without it) gains it when a -mf run prepares it
    xv = TISE2.target_inputs(np.random.default_rng(9), 6)
    np.save(tmp_path / "xv.npy", xv), np.save(tmp_path / "yv.npy", TISE2.target_labels(xv))
    import_split(TISE2, tmp_path / "data", "mine", "val", tmp_path / "xv.npy", tmp_path / "yv.npy")
    val_dir = tmp_path / "data" / "mine" / "val"
    path = val_dir / shards.shard_name(0)
    table = pq.read_table(path).drop_columns([shards.CHEAP])
    pq.write_table(table, path)
    manifest = shards.read_manifest(val_dir)
    manifest["shards"][path.name] = {k: v for k, v in shards.manifest_entry(path, 0, 6).items() if k != "columns"}
    shards.write_manifest(val_dir, manifest)
    before = _column_digests(path)
    report = prepare("tise", {"dim": 2}, {"train": 12, "val": 6}, tmp_path / "gen", 0, 10,
                     open_dataset(tmp_path / "data", "mine", TISE2), cheap=True)
    assert report.cheap_added == {"train": 0, "val": 1}
    after = _column_digests(path)
    assert {k: after[k] for k in before} == before
    np.testing.assert_array_equal(shards.read_split([path], 6)["c"], TISE2.cheap_labels(xv))
    open_dataset(tmp_path / "data", "mine", TISE2)  # its manifest still verifies every shard


# --- refusals and the search knob ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "args", "expected"), [
    ("benchmark", ["--problem", "composite", "--methods", "sibcl-mf"],
     "error: --methods sibcl-mf needs a per-input cheap label and problem 'composite' declares none: use sibcl, or a "
     "problem that has one (phc, tise)"),
    ("benchmark", ["--problem", "composite", "--methods", "fit-mf,sl"], "error: --methods fit-mf needs a per-input cheap label"),
    ("benchmark", ["--problem", "composite", "--methods", "sl", "--config", "{mf_config}"],
     "error: multifidelity: true in --config needs a per-input cheap label and problem 'composite' declares none"),
    ("benchmark", ["--problem", "tise", "--methods", "ssl", "--config", "{mf_config}"],
     "error: --methods ssl has no multi-fidelity variant"),
    ("tune", ["--problem", "composite", "--search-space", "{mf_space}"],
     "error: multifidelity in the search space needs a per-input cheap label and problem 'composite' declares none: "
     "use multifidelity: false, or a problem that has one (phc, tise)"),
    ("tune", ["--problem", "tise", "--search-space", "{bad_space}"],
     "error: search space {bad_space}: key 'multifidelity': 'yes' is not true, false"),
    ("generate", ["--problem", "composite", "--cheap"], "error: --cheap needs a per-input cheap label"),
])
def test_a_problem_without_a_cheap_label_refuses_in_one_line(tmp_path: Path, module: str, args: list[str],
                                                             expected: str) -> None:
    files = {"mf_config": "multifidelity: true\n", "mf_space": "multifidelity: {type: choice, values: [false, true]}\n",
             "bad_space": "multifidelity: 'yes'\n"}
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text)
    argv = [a.format(**paths) for a in args] + ["--data-dir", str(tmp_path / "data"), *(
        ["--output", str(tmp_path / "out")] if module != "generate" else [])]
    done = _run(module, *argv)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.format(**paths)), lines


def test_the_packaged_spaces_search_multifidelity_where_a_cheap_label_exists() -> None:
    """phc and tise declare a cheap label and search the knob; the example plugin (composite) has none and
    its space (the generic default.yaml) does not."""
    from sibcl_ray.problems import problem_class

    for name in ("tise", "phc"):
        assert load_space(problem_class(name).search_space_path())["multifidelity"] == {
            "type": "choice", "values": [False, True]}
    assert problem_class("composite").cheap_label is None
    assert "multifidelity" not in load_space(problem_class("composite").search_space_path())
    assert {m for m, v in METHODS.items() if v.multifidelity} == {"fit-mf", "sl-mf", "tl-mf", "sibcl-mf"}


# --- the methods through the harness ---------------------------------------------------------------------------

@pytest.mark.slow
def test_the_mf_methods_run_through_the_benchmark_with_their_cost(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run("benchmark", "--problem", "tise", "--dim", "2", "--preset", "smoke", "--methods",
                "fit-mf,sl-mf,tl-mf", "--nsam", "25", "--seeds", "1", "--output", str(out), "--data-dir",
                str(tmp_path / "data"), "--export", timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    cells = {c["method"]: c for c in results["cells"]}
    assert set(cells) == {"fit-mf", "sl-mf", "tl-mf"}
    # only tl's pretraining ran: tl-mf fine-tunes its plain twin's encoder
    assert sorted(p.name for p in (out / "train").glob("pretrain-*")) == ["pretrain-tl-s0"]

    data = sorted((tmp_path / "data").glob("tise-*"))[0]
    train = shards.read_split(sorted((data / "train").glob("shard-*.parquet")), 25)
    test = shards.read_split(sorted((data / "test").glob("shard-*.parquet")), 50)
    by_hand = CheapFit.fit(train["c"], train["y"])
    errors = TISE2.errors(by_hand.predict(test["c"]).astype(np.float32), test["y"])
    assert cells["fit-mf"]["test_error"] == pytest.approx(float(np.mean(errors)), rel=1e-9)

    cost = cells["sl-mf"]["solver_cost"]
    assert (cost["target"], cost["cheap"], cost["surrogate"]) == (25, 25 + 50, 0)
    assert 0 < cost["cheap_ratio"] < 0.1 and cost["total"] == pytest.approx(25 + 75 * cost["cheap_ratio"])
    assert cells["tl-mf"]["solver_cost"]["surrogate"] == get_preset("smoke", problem="tise").n_surrogate
    text = (out / "results.md").read_text()
    assert "| fit-mf |" in text and "target-label equivalents" in text

    # the exported -mf model computes its cheap labels itself and reproduces its cell's test error
    for method in ("sl-mf", "tl-mf"):
        folder = out / "models" / f"{method}-n25-s0"
        assert json.loads((folder / INFO_FILE).read_text())["cheap_label"]["what"] == TISE2.cheap_label
        predictor = sibcl_ray.load_model(folder, device="cpu")
        assert float(np.mean(predictor.errors(test["x"], test["y"]))) == pytest.approx(cells[method]["test_error"],
                                                                                       abs=1e-6)
    assert not (out / "models" / "fit-mf-n25-s0").exists()  # no network to export

    # python -m sibcl_ray.predict takes the physical inputs alone, as for any model
    np.save(tmp_path / "v.npy", test["x"][:5])
    cli = _run("predict", "--model", str(out / "models" / "sl-mf-n25-s0"), "--inputs", str(tmp_path / "v.npy"),
               "--output", str(tmp_path / "e0.npy"))
    assert cli.returncode == 0, cli.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "e0.npy"),
                               sibcl_ray.load_model(out / "models" / "sl-mf-n25-s0", device="cpu").predict(test["x"][:5]),
                               rtol=0, atol=1e-6)


def test_the_search_knob_trains_the_mf_twin_from_its_pretraining_on(tmp_path: Path) -> None:
    """``multifidelity: true`` in a trial's hyperparameters: the network pretrains its surrogate head on the
    surrogate set and fine-tunes the residual of the fit made on the training labels, all in one run."""
    from sibcl_ray.train.checkpoints import load_state, selected_weights
    from sibcl_ray.train.runs import RunSpec, fit_run

    rng = np.random.default_rng(11)
    x = TISE2.target_inputs(rng, 40)
    y, c = TISE2.target_labels(x), TISE2.cheap_labels(x)
    xs, ys = TISE2.surrogate_samples(rng, 16)
    datasets = {"train": {"x": x[:24], "y": y[:24], "c": c[:24]}, "val": {"x": x[24:], "y": y[24:], "c": c[24:]},
                "unlabeled": {"x": TISE2.target_inputs(rng, 16)}, "surrogate": {"x": xs, "y": ys}}
    job = RunSpec(problem="tise", problem_options={"dim": 2}, method="sibcl", model_size="small", pretrain_epochs=1,
                  finetune_epochs=2, nsam=24, seed=0, splits={}, storage_path=str(tmp_path), experiment="mf",
                  pretrain_steps=2, surrogate_steps=2,
                  fixed_hparams={"multifidelity": True, "batch_size": 8, "finetune_batch_size": 8})
    result = fit_run(job, {}, "trial", datasets=datasets)
    state = load_state(result.checkpoint)
    assert state["config"]["hparams"]["multifidelity"] is True
    surrogate_losses = [h["surrogate_loss"] for h in state["history"] if "surrogate_loss" in h]
    assert len(surrogate_losses) == 1 and np.isfinite(surrogate_losses[0])
    weights = selected_weights(state)
    expected = CheapFit.fit(c[:24], y[:24] - TISE2.label_offset())
    np.testing.assert_allclose(weights["cheap_coef"].numpy(), expected.coef, rtol=1e-9)
    np.testing.assert_allclose(weights["cheap_norm"].numpy(), [expected.center, expected.scale], rtol=1e-9)
    assert "surrogate_head.0.weight" in weights and weights["predictor.0.weight"].shape[1] == 65  # 64 + E_lo
