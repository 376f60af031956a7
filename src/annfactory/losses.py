"""The losses of ``task=train``: the ``losses`` registry.

A loss is one registered :class:`LossType`: a function that builds the loss function
``loss(output, target) -> scalar tensor``, and a rule that says whether the loss
fits the network's output and the data (:class:`LossOutput`), and if so what it
computes on: the output, or the output layer's pre-activation (the network's final
activation skipped while training). ``task.loss=<name>`` chooses one; left out, the
loss follows the output activation (:func:`loss_for`), so a softmax output is never
trained by a second softmax.

A new loss is one registered builder; ``kinds`` and ``activations`` say what it takes::

    @losses.register("huber", kinds=("regression",), formula="huber_loss(...)")
    def huber():
        from torch.nn import functional

        return lambda output, target: functional.huber_loss(
            output.reshape(target.shape), target
        )

A regression target reaches the loss standardized (:mod:`annfactory.tasks.train`), a
classification target as class indices. torch is imported only inside the builders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, RegistrationError
from annfactory.plugins import load_plugins
from annfactory.registry import BuildCoercion, Registry

if TYPE_CHECKING:
    import torch

    from annfactory.spec_types import ActivationSpec

__all__ = [
    "KINDS",
    "LossChoice",
    "LossFunction",
    "LossOutput",
    "LossType",
    "loss_for",
    "losses",
]

#: The kinds of data a loss may take.
KINDS: Final = ("classification", "regression")

LossFunction = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""``loss(output, target) -> scalar tensor``."""


@dataclass(frozen=True)
class LossOutput:
    """What a loss is chosen for: the network's output and the data.

    Attributes:
        activation: The output activation's name (``identity``, ``softmax``, ...).
        dim: The dimension it normalizes over (``dim``; -1 where it has none).
        kind: ``classification`` or ``regression``.
        out_features: The network's output units.
        classes: The data's classes (its outputs, for regression).
    """

    activation: str
    dim: int
    kind: str
    out_features: int
    classes: int


@dataclass(frozen=True)
class LossChoice:
    """How the network is trained: the loss, and what it is computed from.

    Attributes:
        name: The registered loss whose function trains the network.
        formula: One line for the printout and ``metrics.json``.
        logits: The loss takes the output layer's pre-activation (the network's
            final activation is skipped while training); False: the output.
    """

    name: str
    formula: str
    logits: bool


Choose = Callable[[LossOutput, str], LossChoice]
"""``choose(output, name) -> LossChoice``: how loss ``name`` trains this output, or a
:class:`~annfactory.errors.ConfigError` that says why it cannot."""


@dataclass(frozen=True)
class LossType:
    """A loss.

    Args:
        build: ``build() -> loss(output, target)``.
        kinds: The kinds of data it takes (:data:`KINDS`).
        activations: The output activations it takes; None: any.
        logits: It computes on the pre-activation of the output layer.
        formula: One line for the printout (default: its name and what it takes).
        choose: A rule of its own instead of ``kinds``, ``activations``, ``logits``
            and ``formula`` (the built-in losses' rules depend on the units too).
        doc: One line for listings.
    """

    build: Callable[[], LossFunction]
    kinds: tuple[str, ...] = KINDS
    activations: tuple[str, ...] | None = None
    logits: bool = False
    formula: str = ""
    choose: Choose | None = None
    doc: str = ""

    def choice(self, output: LossOutput, name: str) -> LossChoice:
        """How this loss, registered as ``name``, trains ``output``.

        Raises:
            ConfigError: It does not take this output or data (at ``task.loss``).
        """
        if self.choose is not None:
            return self.choose(output, name)
        if output.kind not in self.kinds:
            raise ConfigError(
                "task.loss",
                f"{name} takes {' or '.join(self.kinds)} data, and the data is "
                f"{output.kind}.",
                "Leave task.loss out: the loss follows the output activation.",
            )
        if self.activations is not None and output.activation not in self.activations:
            raise ConfigError(
                "task.loss",
                f"{name} takes an output after {' or '.join(self.activations)}, and "
                f"the network ends with {output.activation}.",
                f"Set model.output_activation={self.activations[0]}, or leave "
                "task.loss out.",
            )
        on = "pre-activation" if self.logits else "output"
        return LossChoice(name, self.formula or f"{name}({on})", self.logits)


def _check_kinds(name: str, options: Mapping[str, Any]) -> None:
    """A loss's ``kinds`` must be some of :data:`KINDS`."""
    kinds = tuple(options.get("kinds", KINDS))
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise RegistrationError(
            f"loss {name!r}: kinds must be some of {', '.join(KINDS)}, got {kinds!r}"
        )


_loss_from: BuildCoercion[LossType] = BuildCoercion(
    "loss", LossType, "a LossType", check=_check_kinds
)
"""Registry coercion: a :class:`LossType`, or a build function and the other fields
as keyword options (``doc``: the function's first docstring line)."""

losses: Registry[LossType] = Registry("loss", coerce=_loss_from, on_miss=load_plugins)
"""The loss registry: ``task.loss=<name>`` trains with the entry called ``name``."""


def loss_for(
    option: str | None,
    activation: ActivationSpec,
    kind: str,
    out_features: int,
    classes: int,
) -> LossChoice:
    """The loss for an output activation, a kind of data and ``task.loss``.

    Derived (``option`` None): cross-entropy on the logits after an identity output;
    after softmax, the negative log-likelihood of the log-softmax of the
    pre-activation (the same value as cross-entropy on the logits, computed stably,
    never a second softmax); after log_softmax, NLL of the output; one sigmoid unit on
    two classes: binary cross-entropy on the logits; regression: mean squared error.
    A named loss's entry decides (:meth:`LossType.choice`).

    Raises:
        ConfigError: ``task.loss`` contradicts the output activation or the data, or
            the output cannot be trained for this data; the message says why.
        UnknownNameError: ``task.loss`` names no registered loss.
    """
    dim = activation.params.get("dim", -1)
    output = LossOutput(activation.name, dim, kind, out_features, classes)
    if option is None:
        return _derived(output)
    return losses.get(option, key="task.loss").choice(output, option)


# ------------------------------------------------------------------------------------
# The built-in losses' rules. Each names the first thing that is wrong, in the order
# of the questions: is the output trainable for this data at all, does the named loss
# take this kind of data, this many units, this activation.
# ------------------------------------------------------------------------------------


def _regression_output(output: LossOutput) -> None:
    if output.activation in ("softmax", "log_softmax"):
        raise ConfigError(
            "model.output_activation",
            f"a regression network cannot end with {output.activation}: its output "
            "is a distribution over classes, constant for one unit.",
            "Use model.output_activation=identity.",
        )


def _not_for_regression(name: str) -> ConfigError:
    return ConfigError(
        "task.loss",
        f"{name} is a classification loss, and the data is a regression target.",
        "Use task.loss=mse, or leave task.loss out.",
    )


def _binary_output(output: LossOutput) -> None:
    if output.activation not in ("sigmoid", "identity"):
        raise ConfigError(
            "model.output_activation",
            f"one output unit after {output.activation} cannot give class "
            "probabilities.",
            "Use sigmoid (binary cross-entropy) or 2 output units.",
        )


def _not_for_one_unit(name: str) -> ConfigError:
    return ConfigError(
        "task.loss",
        f"{name} needs one output per class; the network has one unit for two "
        "classes, which takes bce.",
        "Use task.loss=bce, or leave task.loss out.",
    )


def _class_dim(output: LossOutput) -> None:
    if output.dim not in (-1, 1):
        raise ConfigError(
            "model.output_activation.dim",
            f"{output.activation} over dim {output.dim} does not normalize over the "
            "classes.",
            "Use dim: -1.",
        )


def _sigmoid_units(output: LossOutput) -> ConfigError:
    return ConfigError(
        "model.output_activation",
        f"a sigmoid on each of {output.out_features} units does not give one class "
        "per row.",
        "Use identity (cross-entropy on the logits) or softmax.",
    )


def _mse_choice() -> LossChoice:
    return LossChoice("mse", "mse_loss(output, standardized target)", False)


def _bce_choice(output: LossOutput) -> LossChoice:
    sigmoid = output.activation == "sigmoid"
    formula = (
        "binary_cross_entropy_with_logits(pre-activation)"
        if sigmoid
        else "binary_cross_entropy_with_logits(output as logit)"
    )
    return LossChoice("bce", formula, sigmoid)


def _nll_choice(output: LossOutput) -> LossChoice:
    """After softmax or log_softmax: NLL of the log-probabilities of the
    pre-activation, which is one computation with cross-entropy on it."""
    if output.activation == "softmax":
        formula = f"nll_loss(log_softmax(pre-activation, dim={output.dim}))"
    else:
        formula = "nll_loss(output), output = log-probabilities"
    return LossChoice("nll", formula, True)


def _cross_entropy_choice(output: LossOutput) -> LossChoice:
    """Cross-entropy on an output that is not a distribution (``identity``, or an
    activation other than the softmaxes and sigmoid)."""
    if output.activation == "sigmoid":
        raise _sigmoid_units(output)
    if output.activation == "identity":
        return LossChoice("cross_entropy", "cross_entropy(output as logits)", False)
    return LossChoice(
        "cross_entropy", f"cross_entropy({output.activation} output as logits)", False
    )


def _derived(output: LossOutput) -> LossChoice:
    """The loss that follows the output activation (``task.loss`` left out)."""
    if output.kind == "regression":
        _regression_output(output)
        return _mse_choice()
    if output.out_features == 1:
        _binary_output(output)
        return _bce_choice(output)
    _class_dim(output)
    if output.activation in ("softmax", "log_softmax"):
        return _nll_choice(output)
    return _cross_entropy_choice(output)


def _choose_mse(output: LossOutput, name: str) -> LossChoice:
    if output.kind != "regression":
        raise ConfigError(
            "task.loss",
            f"{name} is a regression loss, and the data has {output.classes} classes.",
            "Leave task.loss out: the loss follows the output activation.",
        )
    _regression_output(output)
    return _mse_choice()


def _choose_bce(output: LossOutput, name: str) -> LossChoice:
    if output.kind == "regression":
        _regression_output(output)
        raise _not_for_regression(name)
    if output.out_features != 1:
        raise ConfigError(
            "task.loss",
            f"{name} takes one sigmoid unit on two classes; the network has "
            f"{output.out_features} output units.",
            "Leave task.loss out (cross-entropy), or set the output to 1 unit.",
        )
    _binary_output(output)
    return _bce_choice(output)


def _multi_class(output: LossOutput, name: str) -> None:
    """What every loss over one output per class checks first."""
    if output.kind == "regression":
        _regression_output(output)
        raise _not_for_regression(name)
    if output.out_features == 1:
        _binary_output(output)
        raise _not_for_one_unit(name)
    _class_dim(output)


def _choose_cross_entropy(output: LossOutput, name: str) -> LossChoice:
    _multi_class(output, name)
    if output.activation == "softmax":
        raise ConfigError(
            "task.loss",
            f"{name} applies a softmax of its own: after the softmax output it "
            "would be a second softmax, the classic bug.",
            "Leave task.loss out: a softmax output trains on NLL of the "
            "log-softmax of its pre-activation.",
        )
    if output.activation == "log_softmax":
        return _nll_choice(output)
    return _cross_entropy_choice(output)


def _choose_nll(output: LossOutput, name: str) -> LossChoice:
    _multi_class(output, name)
    if output.activation in ("softmax", "log_softmax"):
        return _nll_choice(output)
    raise ConfigError(
        "task.loss",
        f"{name} takes log-probabilities, and a {output.activation} output gives none.",
        "Leave task.loss out (cross-entropy on the logits), or end with log_softmax.",
    )


# ------------------------------------------------------------------------------------
# Built-in losses, in the order ``task.loss`` lists them.
# ------------------------------------------------------------------------------------


def _log_softmax_nll() -> LossFunction:
    from torch.nn import functional

    # cross_entropy on logits and nll of log_softmax(pre-activation) are one
    # computation: log_softmax then nll_loss (what functional.cross_entropy does).
    return functional.cross_entropy


losses.register(
    "cross_entropy",
    _log_softmax_nll,
    choose=_choose_cross_entropy,
    doc="cross-entropy on the logits (an output that is no distribution)",
)
losses.register(
    "nll",
    _log_softmax_nll,
    choose=_choose_nll,
    doc="negative log-likelihood of the log-softmax of the pre-activation",
)


@losses.register("bce", kinds=("classification",), choose=_choose_bce)
def _bce() -> LossFunction:
    """Binary cross-entropy on one logit per row (two classes)."""
    from torch.nn import functional

    def bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.binary_cross_entropy_with_logits(
            output.reshape(target.shape), target.to(output.dtype)
        )

    return bce


@losses.register("mse", kinds=("regression",), choose=_choose_mse)
def _mse() -> LossFunction:
    """Mean squared error on the standardized target."""
    from torch.nn import functional

    def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.mse_loss(output.reshape(target.shape), target)

    return mse
