"""The per-worker training loop: SIB-CL pretraining (or a baseline's), then fine-tuning.

Runs inside a Ray Train ``TorchTrainer`` worker, under DDP when there are several, or, for a
one-worker search trial, inside the Tune trial itself (``train.context``: no Train start-up);
batch sizes are global (each rank takes its share, NT-Xent contrasts against the gathered global
batch, and on GPUs BatchNorm is synchronised across ranks). One
"epoch" on the reported ``epochs_done`` counter is one pretraining epoch (a fixed number of
contrastive steps on unlabeled target inputs, then a fixed number of supervised steps on
the surrogate set: the same budget whatever the batch size, see ``presets``) or one
fine-tuning pass over the ``nsam`` labels. Every epoch reports and saves a checkpoint, so
ASHA can compare trials at equal epochs and a restarted worker group resumes where it
stopped:
- while pretraining, ``val_error`` is the zero-shot validation error of the encoder with
  the surrogate-trained predictor; ``probe_val_error`` is the validation error of a
  closed-form ridge probe fitted on the frozen features of the run's ``nsam`` labels
  (``learning.probe``), ``knn_val_error`` the same with a 5-nearest-neighbour regressor, and
  ``embedding_std`` the collapse monitor;
- while fine-tuning, ``val_error`` is the validation error of the best fine-tuning epoch
  so far — the model that is kept (selection on validation only, never on test);
- ``rung_error`` is what early stopping compares: the pretraining signal named by the
  run's ``rung_metric`` while pretraining, ``val_error`` while fine-tuning.
The steps themselves (batching, one contrastive and one supervised step, float32 on a CPU and
bf16 + channels-last on a GPU) are ``learning.steps``, Ray-free so they can be benchmarked alone.
A multi-fidelity method (``-mf``, or the search's ``multifidelity`` knob) also reads each labelled
input's cheap label: the closed-form fit of the label on it is made once, on the run's labelled
training samples only (gathered from every rank), and held in the network, whose predictor learns
the residual; its surrogate pretraining trains the separate surrogate head (``models.SIBCLNet``).
A non-finite loss or validation error stops the run cleanly instead of failing it (a retry
would only repeat it): every rank agrees on it at the end of the epoch, the last report
carries ``val_error = inf`` and ``stopped_reason``, and the search goes on without it.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sibcl_ray.learning.fidelity import CheapFit
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.probe import embedding_std, knn_predict, ridge_fit, ridge_predict
from sibcl_ray.learning.steps import (Augment, StepSettings, batches, contrastive_split, contrastive_step,
                                      step_batches, supervised_step)
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.monitoring import record_pretraining_throughput
from sibcl_ray.problems import Problem, get_problem
from sibcl_ray.train.checkpoints import STATE_FILE, load_state
from sibcl_ray.train.context import LoopContext, TrainWorker
from sibcl_ray.train.methods import Method, get_method, multifidelity_twin

Arrays = dict[str, torch.Tensor]


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point of every Train worker; ``config`` is built by ``RunSpec.loop_config``."""
    train_loop(config, TrainWorker())


def train_loop(config: dict[str, Any], where: LoopContext) -> None:
    """The whole run (pretraining, then fine-tuning) on one worker, reporting every epoch
    through ``where``: a Ray Train worker or a one-worker Tune trial (``train.context``)."""
    torch.set_num_threads(max(1, int(config["threads"])))
    problem = get_problem(config["problem"], **config["problem_options"])
    hp = per_rank_batches(config["hparams"], where.world_size)
    method = multifidelity_twin(config["method"]) if hp.get("multifidelity") else get_method(config["method"])
    rank, device = where.rank, where.device

    data = {name: _load_split(problem, where.split_batches(name), device) for name in config["splits"]}
    fit = _cheap_fit(data, config) if method.multifidelity else None
    torch.manual_seed(int(config["seed"]))  # same initial weights on every rank and every rerun
    spec = problem.network_spec(config["model_size"])
    settings = StepSettings.for_device(device)  # float32 on a CPU; bf16 autocast + channels-last on a GPU
    cheap_dim = int(data["val"]["c"].shape[1]) if fit is not None else 0

    def build_model(weights: dict[str, Any] | None) -> torch.nn.Module:
        net = SIBCLNet(spec, problem.label_dim, cheap_dim)
        if weights is not None:
            net.load_pretrained(weights)
        if fit is not None:
            net.set_fit(fit)
        if where.world_size > 1 and device.type == "cuda" and config.get("sync_batchnorm", True):
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # global-batch statistics (GPU only in torch)
        return where.prepare_model(settings.prepare(net, spec.dim))

    model = build_model(load_state(config["init_state"])["model"] if config.get("init_state") else None)
    net = _unwrap(model)

    pretrain_epochs = int(config["pretrain_epochs"]) if method.pretrains else 0
    total_epochs = pretrain_epochs + int(config["finetune_epochs"])
    seeds = max(1, int(config.get("finetune_seeds", 1)))
    pre_opt = PretrainOptimizers.for_method(model, method, hp["lr_pretrain"])
    state: dict[str, Any] = {"epochs_done": 0, "best_val": math.inf, "best_epoch": -1, "best_model": None,
                             "resumed_at": [], "seed_best_val": [math.inf] * seeds, "seed_best_epoch": [-1] * seeds,
                             "history": []}

    def generator(replica: int, epochs_done: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(config["seed"]) * 7919 + rank * 104729 + epochs_done
                                             + replica * 15485863)

    saved = None
    checkpoint = where.latest_checkpoint()
    if checkpoint is not None:
        saved = load_state(checkpoint)
        net.load_state_dict(saved["model"])
        pre_opt.load_state_dict(saved["pre_opt"])
        state = {k: saved.get(k, state[k]) for k in state}
        state["resumed_at"] = [*state["resumed_at"], state["epochs_done"]]
    replicas = [FineTuneReplica.new(model, hp, generator(0, state["epochs_done"]))]
    if saved is not None:
        replicas[0].load(saved["fine_opt"], saved["plateau"])
        for i, extra in enumerate(saved.get("replicas", []), start=1):
            replicas.append(FineTuneReplica.new(build_model(extra["model"]), hp, generator(i, state["epochs_done"])))
            replicas[-1].load(extra["fine_opt"], extra["plateau"])

    augment = make_augmenter(problem.invariances, hp["aug_strength"], problem.input_range)
    losses = Losses(problem, config)

    if state["epochs_done"] >= total_epochs:  # restored after its last report: report the result again
        where.report({"val_error": state["best_val"], "rung_error": state["best_val"], "phase": "finetune",
                      "epochs_done": total_epochs, "training_complete": True,
                      "best_finetune_epoch": state["best_epoch"]}, None)
        return
    if state["epochs_done"]:
        print(f"{config.get('trial_name', 'run')}: resumed from the checkpoint after epoch {state['epochs_done']}", flush=True)
    for epoch in range(state["epochs_done"], total_epochs):
        metrics: dict[str, Any]
        if epoch < pretrain_epochs:
            metrics = pretrain_epoch(model, pre_opt, data, problem, method, hp, augment, replicas[0].gen, losses,
                                     epoch, config, settings)
        else:
            if len(replicas) < seeds:  # fine-tuning starts: the other seeds start from the same network
                pretrained = {k: v.detach().clone() for k, v in net.state_dict().items()}
                replicas += [FineTuneReplica.new(build_model(pretrained), hp, generator(i, epoch))
                             for i in range(len(replicas), seeds)]
            metrics = _finetune_replicas(replicas, data, problem, method, hp, augment, losses, epoch, settings,
                                         state, epoch - pretrain_epochs + 1)
        state["epochs_done"] = epoch + 1
        metrics.update(epochs_done=epoch + 1, training_complete=epoch + 1 == total_epochs)
        if state["resumed_at"]:
            metrics["resumed_at"] = state["resumed_at"][-1]
        if not math.isfinite(metrics.get("val_error_epoch", metrics["val_error"])) and losses.problem is None:
            losses.problem = f"non-finite validation error at epoch {epoch + 1} of {losses.context}"
        if _any_rank(losses.problem is not None):
            reason = losses.problem or "non-finite loss on another worker"
            print(f"stopped: {reason}", flush=True)
            metrics.update(val_error=math.inf, rung_error=math.inf, stopped_reason=reason, training_complete=False)
            _report(where, metrics, pre_opt, replicas, state, config)
            return
        if metrics.get("pretrain_samples_per_s") and rank == 0:
            record_pretraining_throughput(problem.name, metrics["pretrain_samples_per_s"])
        # every epoch's numbers travel in the checkpoint: whether the contrastive loss has flattened
        # is read from the last one (``history``), also for runs outside Tune (a benchmark's)
        state["history"] = [*state["history"], {k: v for k, v in metrics.items()
                                                if isinstance(v, (int, float)) and not isinstance(v, bool)}]
        _report(where, metrics, pre_opt, replicas, state, config)


@dataclass
class FineTuneReplica:
    """One fine-tuning run of a trial: its network (DDP-wrapped under Train), Adam with the
    reference's weight decay, ReduceLROnPlateau, and its own random stream (batch order and
    augmentations). Replica 0 is the network that pretrained; the others start from a copy of it."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    plateau: Any
    gen: torch.Generator

    @classmethod
    def new(cls, model: torch.nn.Module, hp: dict[str, Any], gen: torch.Generator) -> FineTuneReplica:
        opt = torch.optim.Adam(model.parameters(), lr=hp["lr_finetune"], weight_decay=1e-5)
        return cls(model, opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=5), gen)

    @property
    def net(self) -> torch.nn.Module:
        return _unwrap(self.model)

    def load(self, opt_state: dict[str, Any], plateau_state: dict[str, Any]) -> None:
        self.opt.load_state_dict(opt_state)
        self.plateau.load_state_dict(plateau_state)


def _finetune_replicas(replicas: list[FineTuneReplica], data: dict[str, Arrays], problem: Problem, method: Method,
                       hp: dict[str, Any], augment: Augment, losses: Losses, epoch: int, settings: StepSettings,
                       state: dict[str, Any], finetune_epoch: int) -> dict[str, Any]:
    """One fine-tuning epoch of every replica, and the trial's score.

    The score (``val_error``) is the mean over replicas of each one's best validation error so
    far: what the label-efficiency harness measures (fine-tuning seeds on one pretrained
    network), and steadier than a single seed's. The model kept is the replica with the lowest
    best validation error, at its best epoch; it only changes when some replica improves, so
    keeping that replica's weights at that moment is enough (selection on validation only).
    """
    finetune_losses, epoch_vals = [], []
    for i, replica in enumerate(replicas):
        finetune_losses.append(_finetune_epoch(replica.model, replica.opt, data["train"], method, hp, augment,
                                               replica.gen, losses, epoch, settings)["finetune_loss"])
        epoch_val = _val_error(replica.model, problem, data["val"])
        replica.plateau.step(epoch_val)
        epoch_vals.append(epoch_val)
        if epoch_val < state["seed_best_val"][i]:
            state["seed_best_val"][i], state["seed_best_epoch"][i] = epoch_val, finetune_epoch
            if epoch_val <= min(state["seed_best_val"]):
                state.update(best_epoch=finetune_epoch,
                             best_model=copy.deepcopy({k: v.cpu() for k, v in replica.net.state_dict().items()}))
    state["best_val"] = float(np.mean(state["seed_best_val"]))
    metrics: dict[str, Any] = {
        "finetune_loss": float(np.mean(finetune_losses)), "val_error": state["best_val"],
        "val_error_epoch": float(np.mean(epoch_vals)), "phase": "finetune", "best_finetune_epoch": state["best_epoch"],
        "lr": replicas[0].opt.param_groups[0]["lr"], "rung_error": state["best_val"]}
    if len(replicas) > 1:  # how much the seeds disagree: the noise a single-seed score would carry
        metrics["val_error_seed_spread"] = float(np.ptp(state["seed_best_val"]))
    return metrics


def per_rank_batches(hparams: dict[str, Any], world_size: int) -> dict[str, Any]:
    """``batch_size`` and ``finetune_batch_size`` are global batches: each of ``world_size``
    ranks takes an equal share (the contrastive loss then gathers the global batch)."""
    out = dict(hparams)
    for key in ("batch_size", "finetune_batch_size"):
        if int(hparams[key]) % world_size:
            raise ValueError(f"{key} {hparams[key]} does not split evenly across {world_size} workers")
        out[key] = int(hparams[key]) // world_size
    return out


class Losses:
    """The problem's supervised losses (on label − offset), and the first non-finite loss seen."""

    def __init__(self, problem: Problem, config: dict[str, Any]) -> None:
        self.finetune = problem.finetune_loss
        self.surrogate = problem.surrogate_loss
        self.context = f"{config.get('trial_name', 'run')} ({config['method']}, hparams {config['hparams']})"
        self.problem: str | None = None

    def check(self, loss: torch.Tensor, what: str, epoch: int) -> None:
        """Remember a non-finite loss; training goes on to the epoch's end so DDP ranks stay in step."""
        if self.problem is None and not torch.isfinite(loss):
            self.problem = f"non-finite {what} loss ({loss.item()}) at epoch {epoch + 1} of {self.context}"


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (one all-reduce per epoch under DDP)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _load_split(problem: Problem, batches: Iterable[dict[str, np.ndarray]], device: torch.device) -> Arrays:
    """This worker's part of a split, read once into memory as tensors (inputs scaled to [0, 1],
    labels less the problem's offset)."""
    parts = list(batches)
    lo, hi = problem.input_range
    x = np.concatenate([p["x"] for p in parts]) if parts else np.zeros((0, *problem.input_shape), np.float32)
    out = {"x": torch.from_numpy((x - lo) / (hi - lo)).float().to(device)}
    if parts and "y" in parts[0]:
        y = np.concatenate([p["y"] for p in parts]) - problem.label_offset()
        out["y"] = torch.from_numpy(y).float().to(device)
    if parts and "c" in parts[0]:  # the cheap labels, raw: the network standardises them (``SIBCLNet``)
        out["c"] = torch.from_numpy(np.concatenate([p["c"] for p in parts])).float().to(device)
    return out


def _cheap_fit(data: dict[str, Arrays], config: dict[str, Any]) -> CheapFit:
    """The closed-form fit of (label − offset) on the cheap label, on every rank's labelled
    training samples (the same fit on each rank)."""
    missing = [s for s in ("train", "val") if s in data and "c" not in data[s]]
    if missing or "train" not in data:
        raise ValueError(f"{config['method']} (multi-fidelity) needs the cheap labels of the train and val splits, "
                         f"and split {(missing or ['train'])[0]!r} was read without them: prepare the data with cheap=True")
    c, y = _gathered(data["train"]["c"]), _gathered(data["train"]["y"])
    return CheapFit.fit(c, y)


def _gathered(values: torch.Tensor) -> np.ndarray:
    """``values`` of every rank, concatenated in rank order (this rank's alone without DDP)."""
    local = values.detach().cpu().numpy()
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return local
    everyone: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, local)
    return np.concatenate(everyone)


@dataclass
class PretrainOptimizers:
    """Pretraining's Adam optimizers: SIB-CL keeps one for its contrastive steps (encoder +
    projector) and another for its supervised surrogate steps (encoder + predictor), as the
    reference does (``optED`` and ``optEP`` in its ``sibcl_pretrain``). One shared Adam would let
    the contrastive gradients set the second-moment estimates that also scale the surrogate
    steps: on tise 2D that held SIB-CL's surrogate loss 4–5× above ``tl``'s (BENCHMARKS.md).
    A method with only one kind of step has one optimizer, named twice."""

    contrastive: torch.optim.Optimizer
    surrogate: torch.optim.Optimizer

    @classmethod
    def for_method(cls, model: torch.nn.Module, method: Method, lr: float) -> PretrainOptimizers:
        first = torch.optim.Adam(model.parameters(), lr=lr)
        both = method.contrastive and method.surrogate_supervised
        return cls(first, torch.optim.Adam(model.parameters(), lr=lr) if both else first)

    def state_dict(self) -> dict[str, Any]:
        return {"contrastive": self.contrastive.state_dict(), "surrogate": self.surrogate.state_dict()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore both; a checkpoint from before the pair existed holds one optimizer's state."""
        if "contrastive" not in saved:
            self.contrastive.load_state_dict(saved)
            return
        self.contrastive.load_state_dict(saved["contrastive"])
        if self.surrogate is not self.contrastive:
            self.surrogate.load_state_dict(saved["surrogate"])


def pretrain_epoch(model: torch.nn.Module, opts: PretrainOptimizers, data: dict[str, Arrays], problem: Problem,
                   method: Method, hp: dict[str, Any], augment: Augment, gen: torch.Generator, losses: Losses,
                   epoch: int, config: dict[str, Any], settings: StepSettings) -> dict[str, Any]:
    """One pretraining epoch and its validation signals: everything a worker does between two
    reports. Needs no Ray context, so ``benchmarks/bench_training.py`` runs the very same epoch
    in a plain process to measure what Ray adds around it."""
    metrics = _pretrain_steps(model, opts, data, method, hp, augment, gen, losses, epoch,
                              int(config["pretrain_steps"]), int(config["surrogate_steps"]), settings)
    metrics["val_error"] = _val_error(model, problem, data["val"], head="surrogate")  # zero-shot
    if "train" in data:
        metrics.update(_probe(_unwrap(model), problem, data["train"], data["val"]))
    metrics["phase"] = "pretrain"
    metrics["rung_error"] = metrics.get(config.get("rung_metric") or "val_error", metrics["val_error"])
    return metrics


def _pretrain_steps(model: torch.nn.Module, opts: PretrainOptimizers, data: dict[str, Arrays], method: Method,
                    hp: dict[str, Any], augment: Augment, gen: torch.Generator, losses: Losses, epoch: int,
                    contrastive_steps: int, surrogate_steps: int, settings: StepSettings) -> dict[str, Any]:
    model.train()
    out: dict[str, Any] = {}
    if method.contrastive:
        target, surrogate = data["unlabeled"]["x"], data.get("surrogate", {}).get("x")
        mix = hp["mix_ratio"] if method.contrastive_surrogate and surrogate is not None and len(surrogate) else 0.0
        n_tgt, n_sur = contrastive_split(hp["batch_size"], mix)
        target_batches = step_batches(len(target), n_tgt, contrastive_steps, gen)
        sur_batches = step_batches(len(surrogate), n_sur, contrastive_steps, gen) if n_sur else None
        total, seen, start = 0.0, 0, time.perf_counter()
        for step, idx in enumerate(target_batches):
            x = target[idx]
            if sur_batches is not None:
                x = torch.cat([x, surrogate[sur_batches[step]]])
            loss = contrastive_step(model, opts.contrastive, x, augment, gen, hp["temperature"], settings)
            losses.check(loss, "contrastive", epoch)
            total += loss.item()
            seen += len(x)
        out["contrastive_loss"] = total / max(1, len(target_batches))
        out["pretrain_samples_per_s"] = seen / (time.perf_counter() - start)
    if method.surrogate_supervised:
        out["surrogate_loss"] = _supervised_pass(model, opts.surrogate, data["surrogate"], hp["batch_size"],
                                                 augment if method.augment_labelled else None, gen,
                                                 losses.surrogate, losses, "surrogate", epoch, settings,
                                                 steps=surrogate_steps, head="surrogate")
    return out


def _finetune_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, train: Arrays, method: Method,
                    hp: dict[str, Any], augment: Augment, gen: torch.Generator, losses: Losses, epoch: int,
                    settings: StepSettings) -> dict[str, Any]:
    model.train()
    loss = _supervised_pass(model, opt, train, hp["finetune_batch_size"], augment if method.augment_labelled else None,
                            gen, losses.finetune, losses, "fine-tuning", epoch, settings,
                            cheap=method.multifidelity)
    return {"finetune_loss": loss}


def _supervised_pass(model: torch.nn.Module, opt: torch.optim.Optimizer, data: Arrays, batch_size: int,
                     augment: Augment | None, gen: torch.Generator, loss_name: str, losses: Losses, what: str,
                     epoch: int, settings: StepSettings, steps: int | None = None, head: str = "predict",
                     cheap: bool = False) -> float:
    """One pass over ``data`` (fine-tuning), or ``steps`` batches strung over passes (surrogate),
    through ``head``; with ``cheap`` the network also reads the inputs' cheap labels."""
    count = len(data["x"])
    index_batches = batches(count, batch_size, gen) if steps is None else step_batches(count, batch_size, steps, gen)
    total = 0.0
    for idx in index_batches:
        x = data["x"][idx]
        if augment is not None:
            x = augment(x, gen)
        if len(x) < 2:  # BatchNorm needs two samples; only a 1-sample shard gets here
            continue
        loss = supervised_step(model, opt, x, data["y"][idx], loss_name, settings, head,
                               data["c"][idx] if cheap else None)
        losses.check(loss, what, epoch)
        total += loss.item()
    return total / max(1, len(index_batches))


@torch.no_grad()
def _val_error(model: torch.nn.Module, problem: Problem, val: Arrays, head: str = "predict") -> float:
    """Mean validation error in the problem's metric, on the whole validation set, of ``head``
    (a multi-fidelity network's predictor reads the cheap labels too)."""
    model.eval()
    cheap = _unwrap(model).cheap_dim and head == "predict"
    preds = [model(val["x"][i : i + 512], head=head, **({"cheap": val["c"][i : i + 512]} if cheap else {}))
             for i in range(0, len(val["x"]), 512)]
    offset = problem.label_offset()
    predicted = problem.physical(torch.cat(preds).cpu().numpy() + offset)  # as the exported predictor returns it
    true = val["y"].cpu().numpy() + offset
    return float(np.mean(problem.errors(predicted, true)))


@torch.no_grad()
def _probe(net: torch.nn.Module, problem: Problem, train: Arrays, val: Arrays) -> dict[str, float]:
    """``probe_val_error`` (ridge probe on frozen features of the labelled samples, scored on
    validation) and ``embedding_std`` (collapse monitor) of the current encoder."""
    net.eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net.encoder(x[i : i + 512]) for i in range(0, len(x), 512)])

    h_val = features(val["x"])
    out = {"embedding_std": embedding_std(net.projector(h_val))}
    if len(train["x"]) >= 2:
        h_train, y_train, offset = features(train["x"]).cpu(), train["y"].cpu(), problem.label_offset()
        true = val["y"].cpu().numpy() + offset
        predicted = ridge_predict(ridge_fit(h_train, y_train), h_val.cpu()).numpy() + offset
        out["probe_val_error"] = float(np.mean(problem.errors(predicted, true)))
        neighbours = knn_predict(h_train, y_train, h_val.cpu()).numpy() + offset
        out["knn_val_error"] = float(np.mean(problem.errors(neighbours, true)))
    return out


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _report(where: LoopContext, metrics: dict[str, Any], pre_opt: PretrainOptimizers,
            replicas: list[FineTuneReplica], state: dict[str, Any], config: dict[str, Any]) -> None:
    """Report the epoch's metrics; rank 0 attaches a checkpoint of everything needed to resume."""
    if where.rank != 0:
        where.report(metrics, None)
        return
    first, others = replicas[0], replicas[1:]
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": first.net.state_dict(), "pre_opt": pre_opt.state_dict(), "fine_opt": first.opt.state_dict(),
                    "plateau": first.plateau.state_dict(), "config": config, **state,
                    "replicas": [{"model": r.net.state_dict(), "fine_opt": r.opt.state_dict(),
                                  "plateau": r.plateau.state_dict()} for r in others]}, Path(tmp) / STATE_FILE)
        where.report(metrics, tmp)
