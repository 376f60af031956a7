"""The network spec: typed, validated, resolved, and free of torch.

:func:`parse_run` turns plain data (a composed config as a container, or a saved
``spec.yaml``) into a :class:`RunSpec`. Every check that can be made before allocation
is made, and every error names its full config path. The factory takes only the spec.

This module holds the spec types and the run-level checks; the parsing of the model
and its layers is :mod:`annfactory.layer_spec`'s, the sizes a data set gives a model
:mod:`annfactory.sizing`'s, and the model types are :mod:`annfactory.models`'. Their
public names stay importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.groups import (
    CHOICE_SLOTS,
    DEVICES,
    DTYPES,
    KEYS,
    ConfigGroup,
    groups,
    run_keys,
    validate_device,
    validate_key,
)
from annfactory.layers import layers
from annfactory.models import mlp_layer_names, model_types
from annfactory.params import require_mapping

if TYPE_CHECKING:
    from annfactory.layer_spec import LAYER_FIELDS, layers_set_by_groups, parse_network
    from annfactory.sizing import DataShape

__all__ = [
    "DEVICES",
    "DTYPES",
    "FOLD_AT",
    "FORMAT_KEY",
    "LAYER_FIELDS",
    "MODEL_TYPES",
    "ActivationSpec",
    "InitSpec",
    "LayerSpec",
    "NetworkSpec",
    "ParameterSpec",
    "RunSpec",
    "layers_set_by_groups",
    "mlp_layer_names",
    "parse_network",
    "parse_run",
    "reject_targets",
    "validate_device",
]

#: The built-in model types (the registry :data:`annfactory.models.model_types` has
#: every registered one).
MODEL_TYPES: Final = tuple(model_types.names())
#: The key of a saved ``spec.yaml`` that records its file format (``format_version:
#: 1``). No config key: :mod:`annfactory.runs` writes it and checks it on loading;
#: :func:`parse_run` skips it, so a saved spec.yaml's data parses as it is.
FORMAT_KEY: Final = "format_version"
#: Consecutive layers that read the same, from this many on, are folded into one
#: entry of :meth:`NetworkSpec.summary_line`.
FOLD_AT: Final = 3
#: Names that moved to :mod:`annfactory.layer_spec`, importable from here as before.
#: They are looked up on first use (:func:`__getattr__`): layer_spec imports the spec
#: types of this module.
_IN_LAYER_SPEC: Final = frozenset(
    {"LAYER_FIELDS", "layers_set_by_groups", "parse_network"}
)


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


# ------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------


def parse_run(data: Mapping[str, Any], strict: bool = True) -> RunSpec:
    """Validate a whole run config (plain data) and resolve it into a :class:`RunSpec`.

    Args:
        data: The config: ``model`` and optionally the other top-level groups
            (``init``, ``activation``, ``task``, a plugin's) and keys (``seed``,
            ``batch_size``, ``device``, ``dtype``, ``compile``); see
            :mod:`annfactory.groups`.
        strict: Refuse other top-level keys (a typo such as ``sede``). With False they
            are ignored, for configs of applications that hold keys of their own.
            :data:`FORMAT_KEY` (of a saved spec.yaml) is skipped either way; its
            version is checked by :func:`annfactory.load_spec`.

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    from annfactory.layer_spec import parse_network  # it imports the types above

    require_mapping(data, "", "the config")
    reject_targets(data, "")
    chosen = _top_level_groups(data, strict)
    if "model" not in data:
        raise ConfigError(
            "model", "no model is chosen.", "Add model=demo or model=mlp."
        )
    values = {
        name: validate_key(name, data.get(name, param.default))
        for name, param in KEYS.items()
    }
    extras = {
        name: group.parse(data[name], name)
        for name, group in chosen.items()
        if group.parse is not None
    }
    model = data["model"]
    data_shape = None
    note = None
    if extras.get("data") is not None:
        from annfactory.sizing import size_by_data

        data_shape = _data_shape(extras["data"], values["seed"])
        model, note = size_by_data(
            model, data_shape, data.get("init"), data.get("activation")
        )
    network = parse_network(
        model,
        key="model",
        init=data.get("init"),
        activation=data.get("activation"),
    )
    if data_shape is not None:
        from annfactory.sizing import check_data_sizes

        check_data_sizes(network, data_shape, model)
    notes = (note,) if note else ()
    return RunSpec(network=network, **values, extras=extras, notes=notes)


def _data_shape(data: Any, seed: int) -> DataShape:
    """What a network trained on the run's data set must take and give."""
    from annfactory.data import data_image_shape, data_sizes, datasets
    from annfactory.sizing import DataShape

    features, outputs, kind = data_sizes(data, seed)
    images = tuple(
        name for name, entry in datasets.items() if entry.image_shape is not None
    )
    return DataShape(data.name, features, outputs, kind, data_image_shape(data), images)


def _top_level_groups(data: Mapping[str, Any], strict: bool) -> dict[str, ConfigGroup]:
    """The top-level groups among the keys of ``data``; with ``strict``, any other
    key that is not one of :data:`~annfactory.groups.KEYS` (or :data:`FORMAT_KEY`)
    is refused."""
    chosen: dict[str, ConfigGroup] = {}
    for name in data:
        if name in KEYS or name == FORMAT_KEY:
            continue
        try:
            group: ConfigGroup | None = groups.get(name)  # a miss loads plugins
        except UnknownNameError:
            group = None
        if group is not None and group.top_level:
            chosen[name] = group
        elif strict:
            raise UnknownNameError(str(name), "top-level key", name, run_keys())
    return chosen


_TARGET: Final = "_target_"
#: Slots that name an activation or an init, by the last part of their config path.
_CHOICE_SLOTS: Final = CHOICE_SLOTS


def reject_targets(node: Any, key: str) -> None:
    """Refuse a ``_target_`` key anywhere in ``node``, before anything is looked up.

    Hydra's ``instantiate`` would import and call what it names; annfactory builds
    only registered entries and never reads it.
    """
    if isinstance(node, Mapping):
        if _TARGET in node:
            raise _target_error(key)
        for name, child in node.items():
            reject_targets(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            reject_targets(child, f"{key}[{index}]")


def _target_error(key: str) -> ConfigError:
    parent, _, last = key.rpartition(".")
    registry = _CHOICE_SLOTS.get(last)
    if registry is not None:
        hint = f"Use {key}.name with one of: {', '.join(registry.names())}."
    elif parent.endswith(".layers") or parent == "layers":
        hint = f"Use {key}.type with one of: {', '.join(layers.names())}."
    else:
        hint = "Remove it; configs name registered layer types, activations and inits."
    return ConfigError(
        f"{key}.{_TARGET}" if key else _TARGET,
        f"configs name registered entries; {_TARGET} is never imported or called.",
        hint,
    )


def __getattr__(name: str) -> Any:
    """The names that moved to :mod:`annfactory.layer_spec` (PEP 562)."""
    if name in _IN_LAYER_SPEC:
        from annfactory import layer_spec

        return getattr(layer_spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
