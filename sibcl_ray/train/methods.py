"""SIB-CL and its baselines as four switches of one training loop (docs/method.md "Baselines"),
the active-labelling variants (``sibcl-al``, ``ssl-al``, ``tl-al``): the same
pretraining, then the labelled inputs picked by their embeddings
(``learning.selection``) instead of drawn at random, and the multi-fidelity ones (``fit-mf``,
``sl-mf``, ``tl-mf``, ``sibcl-mf``; docs/method.md "Multi-fidelity"): each input's cheap label is
an input too, and the network learns what a closed-form fit on it leaves."""

from __future__ import annotations

from dataclasses import dataclass

from sibcl_ray.errors import SibclError


@dataclass(frozen=True)
class Method:
    """What a method does before fine-tuning, and whether labelled inputs are augmented."""

    name: str
    #: NT-Xent pretraining on two invariance views of unlabeled target inputs.
    contrastive: bool
    #: Surrogate inputs mixed into the contrastive batches (share = ``mix_ratio``).
    contrastive_surrogate: bool
    #: A supervised epoch on labelled surrogate data after each pretraining epoch.
    surrogate_supervised: bool
    #: Invariance augmentation of labelled inputs (surrogate pretraining and fine-tuning).
    augment_labelled: bool
    #: Active labelling: after pretraining, the ``nsam`` inputs to label are picked from the
    #: unlabeled pool by their embeddings and solved on demand (``data.picks``).
    selects: bool = False
    #: The method whose pretraining this one shares (an ``-al`` variant's random-labelling twin,
    #: a ``-mf`` variant's plain one).
    twin: str | None = None
    #: Δ-learning: the network also reads each input's cheap label (``Problem.cheap_labels``) and
    #: predicts the residual of the closed-form fit of the label on it (``learning.fidelity``).
    multifidelity: bool = False
    #: False for ``fit-mf``: the closed-form fit alone, no network is trained.
    network: bool = True

    def __post_init__(self) -> None:
        if self.selects and self.twin is None:
            raise ValueError(f"method {self.name!r}: a method that selects its labels shares a twin's pretraining")

    @property
    def pretraining(self) -> str:
        """The name its pretraining run is kept under: shared with its twin."""
        return self.twin or self.name

    @property
    def pretrains(self) -> bool:
        return self.contrastive or self.surrogate_supervised

    def needs(self) -> tuple[str, ...]:
        """The dataset splits the training loop reads for this method."""
        splits = ["train", "val"]
        if self.contrastive:
            splits.append("unlabeled")
        if self.contrastive_surrogate or self.surrogate_supervised:
            splits.append("surrogate")
        return tuple(splits)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("sibcl", contrastive=True, contrastive_surrogate=True, surrogate_supervised=True, augment_labelled=False),
        Method("ssl", contrastive=True, contrastive_surrogate=False, surrogate_supervised=False, augment_labelled=False),
        Method("tl", contrastive=False, contrastive_surrogate=False, surrogate_supervised=True, augment_labelled=False),
        Method("tl-i", contrastive=False, contrastive_surrogate=False, surrogate_supervised=True, augment_labelled=True),
        Method("sl", contrastive=False, contrastive_surrogate=False, surrogate_supervised=False, augment_labelled=False),
        Method("sl-i", contrastive=False, contrastive_surrogate=False, surrogate_supervised=False, augment_labelled=True),
        Method("sibcl-al", contrastive=True, contrastive_surrogate=True, surrogate_supervised=True,
               augment_labelled=False, selects=True, twin="sibcl"),
        Method("ssl-al", contrastive=True, contrastive_surrogate=False, surrogate_supervised=False,
               augment_labelled=False, selects=True, twin="ssl"),
        Method("tl-al", contrastive=False, contrastive_surrogate=False, surrogate_supervised=True,
               augment_labelled=False, selects=True, twin="tl"),
        # the -mf networks augment their labelled inputs: the cheap label is exactly invariant too, and on
        # tise 2D quick it gave sl-mf 7 % (BENCHMARKS.md "Multi-fidelity")
        Method("fit-mf", contrastive=False, contrastive_surrogate=False, surrogate_supervised=False,
               augment_labelled=False, multifidelity=True, network=False),
        Method("sl-mf", contrastive=False, contrastive_surrogate=False, surrogate_supervised=False,
               augment_labelled=True, multifidelity=True),
        Method("tl-mf", contrastive=False, contrastive_surrogate=False, surrogate_supervised=True,
               augment_labelled=True, twin="tl", multifidelity=True),
        Method("sibcl-mf", contrastive=True, contrastive_surrogate=True, surrogate_supervised=True,
               augment_labelled=True, twin="sibcl", multifidelity=True),
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise SibclError(f"unknown method {name!r}: allowed values are {', '.join(METHODS)}")
    return METHODS[name]


def multifidelity_twin(name: str) -> Method:
    """The ``-mf`` variant of a network method (the search's ``multifidelity`` knob turned on)."""
    method = get_method(name)
    if method.multifidelity:
        return method
    if f"{name}-mf" not in METHODS:
        with_mf = ", ".join(m for m, v in METHODS.items() if v.multifidelity and v.network)
        raise SibclError(f"method {name!r} has no multi-fidelity variant: allowed are {with_mf} and their plain twins")
    return METHODS[f"{name}-mf"]
