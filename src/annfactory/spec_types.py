"""The spec's types: a run, its network, layers, parameters, inits and activations,
typed and resolved, and free of torch and of I/O.

:func:`annfactory.spec.parse_run` makes them; the factory builds from them. Below the
parsers (:mod:`annfactory.layer_spec`, :mod:`annfactory.sizing`), which import them,
and importable from :mod:`annfactory.spec` as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Final

from annfactory.groups import KEYS

__all__ = [
    "FOLD_AT",
    "ActivationSpec",
    "InitSpec",
    "LayerSpec",
    "NetworkSpec",
    "ParameterSpec",
    "RunSpec",
]

#: Consecutive layers that read the same, from this many on, are folded into one
#: entry of :meth:`NetworkSpec.summary_line`.
FOLD_AT: Final = 3


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _shape_text(shape: tuple[int, ...]) -> str:
    """``8`` for a vector, ``3x32x32`` for a larger sample."""
    return "x".join(str(size) for size in shape)


def _vector_size(shape: tuple[int, ...], owner: str, which: str) -> int:
    """The size of a vector shape; the ``in_features``-style names need one."""
    if len(shape) != 1:
        name = "in_features" if which == "input" else "out_features"
        raise ValueError(
            f"{owner} has the {which} shape {list(shape)}: {name} exists for "
            f"vectors only; read {which}_shape"
        )
    return shape[0]


@dataclass(frozen=True)
class _Choice:
    """A registered name with its validated parameters."""

    name: str
    params: Mapping[str, Any]

    def describe(self) -> str:
        """``name(p=v, ...)``, or the bare name without parameters."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.name}({inner})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class InitSpec(_Choice):
    """An init scheme and its parameters (``null`` gains already resolved)."""


@dataclass(frozen=True)
class ActivationSpec(_Choice):
    """An activation and its parameters."""


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter tensor of a layer and how it is initialized.

    Attributes:
        name: Its path in the layer: ``weight``, or ``block.fc1.weight`` for a
            parameter of a child module.
        shape: Its shape.
        init: The scheme that fills it, fully resolved (never ``default``).
        from_default: ``init`` is the layer type's own PyTorch default.
        key: The config path that chose ``init`` (``model.layers.linear1.weight_init``,
            or ``init`` where the top-level group set it), for messages.
    """

    name: str
    shape: tuple[int, ...]
    init: InitSpec
    from_default: bool
    key: str = field(default="", compare=False)

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count

    def describe_init(self) -> str:
        text = self.init.describe()
        return f"default: {text}" if self.from_default else text


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its type, shapes, options, activation and inits.

    Shapes are of one sample: the batch dimension is not part of them. A nested
    layer (a residual block) holds its own layers in ``layers``; its ``parameters``
    are theirs, named by their path in it (``fc1.weight``), then its own
    (``projection.weight``).
    """

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    options: Mapping[str, Any]
    activation: ActivationSpec
    weight_init: InitSpec
    bias_init: InitSpec
    parameters: tuple[ParameterSpec, ...]
    layers: tuple[LayerSpec, ...] = ()

    @property
    def in_features(self) -> int:
        """The size of a vector input (``input_shape`` is ``(in_features,)``)."""
        return _vector_size(self.input_shape, f"layer {self.name!r}", "input")

    @property
    def out_features(self) -> int:
        """The size of a vector output (``output_shape`` is ``(out_features,)``)."""
        return _vector_size(self.output_shape, f"layer {self.name!r}", "output")

    @property
    def num_params(self) -> int:
        return sum(parameter.numel for parameter in self.parameters)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "type": self.type,
            **self.options,
            "activation": self.activation.to_dict(),
            "weight_init": self.weight_init.to_dict(),
            "bias_init": self.bias_init.to_dict(),
        }
        if self.layers:
            data["layers"] = {layer.name: layer.to_dict() for layer in self.layers}
        return data


@dataclass(frozen=True)
class NetworkSpec:
    """A network: the shape of one input sample and the layers in order."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    @property
    def in_features(self) -> int:
        """The size of a vector input (``input_shape`` is ``(in_features,)``)."""
        return _vector_size(self.input_shape, "the network", "input")

    @property
    def out_features(self) -> int:
        """The size of a vector output (``output_shape`` is ``(out_features,)``)."""
        return self.layers[-1].out_features

    @property
    def num_params(self) -> int:
        return sum(layer.num_params for layer in self.layers)

    def summary_line(self) -> str:
        """The network in one line: ``3 -> linear1(3, sigmoid) -> out(2, softmax)``.

        A run of :data:`FOLD_AT` or more consecutive layers that read the same (type,
        size, activation) is folded into one entry that names the first and the last
        and counts them: ``8 -> hidden1..hidden80(256, relu) x80 -> out(2, identity)``,
        so a deep network's line stays short. ASCII only, for any terminal.
        """
        parts = [_shape_text(self.input_shape)]
        runs = groupby(
            self.layers,
            key=lambda layer: (layer.type, layer.output_shape, layer.activation),
        )
        for _, grouped in runs:
            run = list(grouped)
            first, last = run[0], run[-1]
            size = _shape_text(first.output_shape)
            shown = f"({size}, {first.activation.describe()})"
            if len(run) >= FOLD_AT:
                parts.append(f"{first.name}..{last.name}{shown} x{len(run)}")
            else:
                parts.extend(f"{layer.name}{shown}" for layer in run)
        return " -> ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        # A vector input is saved as in_features, as before input shapes existed.
        if len(self.input_shape) == 1:
            given: dict[str, Any] = {"in_features": self.input_shape[0]}
        else:
            given = {"input_shape": list(self.input_shape)}
        return {
            "type": "sequential",
            **given,
            "layers": {layer.name: layer.to_dict() for layer in self.layers},
        }


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs: the network and how to build and feed it.

    The plain fields are the top-level keys of :data:`annfactory.groups.KEYS`;
    ``extras`` holds the parsed values of plugins' top-level groups, by group name.
    ``notes`` are lines for the user about how the spec was made (the sizes a data
    set gave the network, see :mod:`annfactory.sizing`); they are not saved and two
    specs that differ only in them are equal.
    """

    network: NetworkSpec
    seed: int = 0
    batch_size: int = 5
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`parse_run` turns back into an equal spec."""
        data: dict[str, Any] = {"model": self.network.to_dict()}
        data.update((name, getattr(self, name)) for name in KEYS)
        data.update((name, _plain(value)) for name, value in self.extras.items())
        return data


def _plain(value: Any) -> Any:
    """A plugin group's parsed value as plain data (see ``ConfigGroup.parse``)."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value
