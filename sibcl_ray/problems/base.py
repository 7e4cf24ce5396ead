"""The problem interface: everything training and generation need to know about a problem.

Training, generation, search and benchmarks talk to a :class:`Problem` only, so adding a
problem never means scattering ``if problem == ...`` through the learning code. A problem
is NumPy-only: it names its invariances and losses, it does not implement them in torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sibcl_ray.errors import SibclError


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of the encoder / projector / predictor (docs/method.md "Reference model").

    ``conv_widths`` are the convolution blocks (each Conv → BatchNorm → ReLU → MaxPool with
    the matching ``pools`` entry); ``fc_widths`` the Linear → ReLU → Linear head after global
    average pooling, whose last width is the representation size.
    """

    dim: int
    kernel: int
    conv_widths: tuple[int, ...]
    pools: tuple[int, ...]
    fc_widths: tuple[int, ...]
    predictor_widths: tuple[int, ...]
    projector_widths: tuple[int, ...]
    #: 'circular' for periodic cells, 'zeros' for boxes with walls.
    padding: str = "circular"

    def widened(self, factor: float) -> ModelSpec:
        """The same network with every layer ``factor`` times as wide (kernel, pools, depth and the
        label's output width unchanged): the convolutions' cost grows about as ``factor``².

        >>> ModelSpec(dim=2, kernel=7, conv_widths=(16, 32), pools=(2, 4), fc_widths=(128,),
        ...           predictor_widths=(256,), projector_widths=(64,)).widened(2).conv_widths
        (32, 64)
        """
        def scaled(widths: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(max(1, round(w * factor)) for w in widths)

        return replace(self, conv_widths=scaled(self.conv_widths), fc_widths=scaled(self.fc_widths),
                       predictor_widths=scaled(self.predictor_widths), projector_widths=scaled(self.projector_widths))


#: The network sizes of every problem: its own ``small`` (CPU-sized) and ``reference`` (the
#: paper's), and ``medium``: ``small`` twice as wide (about 4× its FLOPs, 1/8 of the phc reference's),
#: the size between the two that a 2-core machine can still pretrain (3.1× small's step time there;
#: BENCHMARKS.md, "Model size").
MODEL_SIZES = ("small", "medium", "reference")


@dataclass(frozen=True)
class ProblemOption:
    """A keyword of a problem's constructor that users set from the command line (``--name``).

    The constructor checks the value (one-line ``SibclError`` naming what is allowed), so the
    message is the problem's own; ``kind`` converts the text first.
    """

    name: str
    kind: type
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Problem(ABC):
    """A physics problem as SIB-CL sees it: cheap inputs, expensive labels, a surrogate.

    A problem outside this package registers its class under the entry-point group
    ``sibcl_ray.problems`` (``examples/sibcl-composite`` is one) or is named on the command line
    as ``--problem package.module:Class``; ``problems.registry`` finds it. It brings its own
    command-line options (``options``), preset departures (``preset_overrides``) and, when the
    generic one does not suit it, its own search space (``search_space_path``).
    """

    #: Constructor keywords settable from the command line.
    options: ClassVar[tuple[ProblemOption, ...]] = ()
    #: Preset name → fields of ``presets.Preset`` to change for this problem (sizes, epochs, rungs).
    preset_overrides: ClassVar[dict[str, dict[str, Any]]] = {}

    name: ClassVar[str]
    #: Physical value range of the inputs; the network sees them mapped affinely to [0, 1].
    input_range: ClassVar[tuple[float, float]]
    #: Names of the input transforms that leave the label exactly unchanged.
    invariances: tuple[str, ...]
    #: Loss on the target labels when fine-tuning, and on surrogate labels ('l1', 'mse', 'log_l1').
    finetune_loss: str
    surrogate_loss: str

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Spatial shape of one input (no channel axis)."""

    @property
    @abstractmethod
    def label_dim(self) -> int:
        """Length of one label vector."""

    @abstractmethod
    def signature(self) -> dict[str, Any]:
        """Everything that determines the generated data; datasets are keyed by it."""

    @abstractmethod
    def target_inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` random target inputs, shape (count, *input_shape): free to make."""

    @abstractmethod
    def target_labels(self, inputs: np.ndarray) -> np.ndarray:
        """Labels of target inputs, shape (count, label_dim): the expensive eigensolves."""

    @abstractmethod
    def surrogate_samples(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` surrogate inputs and their cheap labels."""

    @abstractmethod
    def label_offset(self) -> np.ndarray:
        """What the network does not have to learn: it predicts ``label - label_offset()``."""

    #: The smallest value the label can take physically (0 for a density of states, a frequency, or
    #: a ground-state energy above a non-negative potential), or None when it has no such bound.
    label_floor: ClassVar[float | None] = None

    def physical(self, predicted: np.ndarray) -> np.ndarray:
        """Predictions (offset added back) with values the label cannot take raised to ``label_floor``.

        A network that predicts ``label - offset`` can go below the floor (a negative DOS where a
        band gap is); clipping never moves a prediction away from a true label that obeys the floor,
        so it can only lower the error.

        >>> from sibcl_ray.problems import get_problem
        >>> get_problem("tise", dim=2).physical(np.array([[-0.5], [0.25]]))
        array([[0.  ],
               [0.25]])
        """
        return predicted if self.label_floor is None else np.maximum(predicted, self.label_floor)

    @abstractmethod
    def errors(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        """Per-sample error in the problem's published metric (docs/method.md)."""

    @abstractmethod
    def model_spec(self, size: str) -> ModelSpec:
        """Network sizes: ``'reference'`` (the paper's) or ``'small'`` (CPU-sized)."""

    def network_spec(self, size: str) -> ModelSpec:
        """The network of any of ``MODEL_SIZES``: what training, evaluation and export build. A
        problem defines ``small`` and ``reference`` (``model_spec``); ``medium`` is derived here, so
        every problem, plugins included, has it."""
        if size not in MODEL_SIZES:
            raise SibclError(f"model size {size!r} is unknown: allowed values are {', '.join(MODEL_SIZES)}")
        return self.model_spec("small").widened(2) if size == "medium" else self.model_spec(size)

    #: What a label is called in files and plots (an output column, an axis title).
    label_name: ClassVar[str] = "y"
    #: What the problem's per-input cheap label is (a coarse solve of the very input, e.g. tise's E0
    #: on a 5^d grid), or None when it declares none. With one, ``cheap_labels`` computes it, the
    #: shards of the labelled splits carry it as column ``c``, and the multi-fidelity methods
    #: (``fit-mf``, ``sl-mf``, ``tl-mf``, ``sibcl-mf``) and the search knob ``multifidelity`` use it.
    cheap_label: ClassVar[str | None] = None
    #: Whether the generators above make real data. A problem whose data only comes from its
    #: users' files (``python -m sibcl_ray.import``) sets False and raises in them; a run then
    #: refuses, in one line, a split its imported dataset lacks instead of generating it.
    generates: ClassVar[bool] = True

    def read_foreign_file(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """(inputs, labels or None) from a file layout this problem knows besides ``.npy``,
        ``.npz`` and Parquet (phc: the reference code's HDF5), for ``python -m sibcl_ray.import``."""
        raise SibclError(f"{path}: {path.suffix or 'a file without suffix'} is not a format --problem {self.name} "
                         "reads: give .npy, .npz (arrays x, y) or .parquet (columns x, y)")

    def cheap_labels(self, inputs: np.ndarray) -> np.ndarray:
        """The cheap label of each input, shape (count, 1) or (count, label_dim), float32: what a
        coarse solver says of the very input (NumPy only, batched: it runs in label tasks and in
        the predictor). Only for a problem whose ``cheap_label`` is set."""
        raise SibclError(no_cheap_label(self.name, "cheap labels"))

    def label_axis(self) -> tuple[str, np.ndarray] | None:
        """The physical axis a vector label is sampled on, as (name, values) — e.g. the DOS's
        normalised frequencies — so plots and exported models can put it on an axis; None for
        a scalar label or one without such an axis."""
        return None

    def label_columns(self) -> list[str]:
        """One name per label component, for CSV headers."""
        if self.label_dim == 1:
            return [self.label_name]
        axis = self.label_axis()
        if axis is not None and len(axis[1]) == self.label_dim:
            return [f"{self.label_name}_{v:.4f}" for v in axis[1]]
        return [f"{self.label_name}_{i}" for i in range(self.label_dim)]

    def label_scalar(self, labels: np.ndarray) -> tuple[str, np.ndarray]:
        """One number per label that a person recognises, to colour an embedding by:
        (its name, its values). The mean over the label's components unless a problem knows better."""
        if self.label_dim == 1:
            return self.label_name, labels[:, 0]
        return f"mean {self.label_name}", labels.mean(axis=1)

    @classmethod
    def search_space_path(cls) -> Path:
        """The search space ``tune`` uses without ``--search-space``: the packaged one named
        after the problem if there is one, else the generic ``default.yaml``."""
        spaces = resources.files("sibcl_ray.search_spaces")
        own = spaces / f"{cls.name}.yaml"
        return Path(str(own if own.is_file() else spaces / "default.yaml"))

    def describe(self) -> str:
        """One line for logs and summaries."""
        sig = ", ".join(f"{k}={v}" for k, v in self.signature().items() if k != "problem")
        return f"{self.name} ({sig})"


def require_cheap_label(problem: str, what: str, plain: str | None = None) -> None:
    """Refuse ``what`` in one line (``SibclError``) unless problem ``problem`` declares a cheap label."""
    from sibcl_ray.problems.registry import problem_class

    if problem_class(problem).cheap_label is None:
        raise SibclError(no_cheap_label(problem, what, plain))


def no_cheap_label(problem: str, what: str, plain: str | None = None) -> str:
    """The one line that refuses ``what`` (a ``-mf`` method, the ``multifidelity`` knob) for a
    problem that declares no per-input cheap label; ``plain`` names what to use instead."""
    from sibcl_ray.problems.registry import available_problems, problem_class

    having = [n for n in available_problems() if _has_cheap_label(problem_class, n)]
    instead = f"use {plain}, or " if plain else "use "
    return (f"{what} needs a per-input cheap label and problem {problem!r} declares none: {instead}a problem "
            f"that has one ({', '.join(having) or 'none installed'})")


def _has_cheap_label(problem_class: Any, name: str) -> bool:
    try:
        return problem_class(name).cheap_label is not None
    except SibclError:  # a plugin that fails to load does not decide this message
        return False
