"""Model types: the ``model type`` registry and its built-in expanders.

A model type turns its ``model`` node (plain data) into the network's input shape
and its layers before resolution (:class:`LayerEntry`): ``sequential`` lists its
layers by name, ``mlp`` generates them from ``depth`` and ``width``. Resolving each
layer (types, sizes, inits) is :mod:`annfactory.layer_spec`'s work, the same for
every model type. No torch here.

A new model type is one registered expander::

    @model_types.register("tower", params={"in_features": Param(int, REQUIRED)})
    def tower(model: Mapping[str, Any], key: str) -> Expansion:
        ...
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from annfactory.errors import ConfigError, RegistrationError, UnknownNameError
from annfactory.params import (
    REQUIRED,
    Param,
    check_keys,
    require_mapping,
    validate_params,
)
from annfactory.plugins import load_plugins
from annfactory.registry import Registry

__all__ = [
    "Expander",
    "Expansion",
    "GeneratedLayers",
    "LayerEntry",
    "ModelType",
    "mlp_layer_names",
    "model_types",
]


@dataclass(frozen=True)
class LayerEntry:
    """A layer before resolution: its name, its fields, and each field's config path.

    The fields are those a layer node of a ``sequential`` model holds (``type``,
    options, ``activation``, ``weight_init``, ``bias_init``); a model type that
    generates layers fills them in and points each field's path at the key it came
    from (an mlp's ``width`` is every hidden layer's ``out_features``).

    Attributes:
        name: The layer's name, its attribute in the network.
        fields: The layer's settings, as plain data.
        keys: The config path of each field, for error messages.
    """

    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The config path of the layer: the node its ``type`` came from."""
        parent = self.keys.get("type", "").rpartition(".")[0]
        return parent or f"model.layers.{self.name}"

    def key(self, name: str) -> str:
        """The config path of field ``name``, given or not."""
        return self.keys.get(name, f"{self.path}.{name}")

    def update(self, node: Mapping[str, Any], path: str) -> None:
        """Set the fields of ``node``, a layer node at config path ``path``."""
        self.fields.update(node)
        self.keys.update({name: f"{path}.{name}" for name in node})


@dataclass(frozen=True)
class Expansion:
    """What a model type makes of its config node.

    Attributes:
        input_shape: The shape of one input sample (no batch dimension).
        layers: The layers in order, before resolution.
    """

    input_shape: tuple[int, ...]
    layers: list[LayerEntry]


Expander = Callable[[Mapping[str, Any], str], Expansion]
"""``expand(model, key) -> Expansion``: a model node at config path ``key``, validated
(unknown keys refused, with the closest valid one) and expanded."""


@dataclass(frozen=True)
class GeneratedLayers:
    """How a model type makes its layers from its settings instead of listing them
    (an mlp makes ``hidden1`` ... ``hidden<depth>``, then ``out``).

    The override checks ask it which layers a composed model has, and what would
    add one that a command line names, before anything is built.

    Args:
        names: The layers' names for the model's settings (a mapping holding at
            least ``made_from``'s keys, as configured), or None where those
            settings are not valid yet.
        made_from: The model keys the layers are made from (``depth``, ``width``).
        count_key: The model key that says how many layers there are (``depth``).
        settings_for: The model settings that would make a layer called so
            (``hidden7``: ``{"depth": 7}``), or None where no setting makes one.
    """

    names: Callable[[Mapping[str, Any]], list[str] | None]
    made_from: tuple[str, ...]
    count_key: str
    settings_for: Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class ModelType:
    """A model type.

    Args:
        params: Its scalar options (``in_features``, ``depth``, ...), for listings
            and for checks made before a config is composed. The expander validates
            them with :func:`~annfactory.params.validate_params`.
        expand: ``expand(model, key) -> Expansion``.
        doc: One line for listings.
        generated: How it makes its layers from its settings; None for a type
            that lists them under ``layers`` (``sequential``).
        group_keys: For a top-level group that sets a field of its layers
            (``init``, ``activation``), the model's own key that the group replaces
            (an mlp's ``weight_init``, ``hidden_activation``).
    """

    params: Mapping[str, Param]
    expand: Expander
    doc: str = ""
    generated: GeneratedLayers | None = None
    group_keys: Mapping[str, str] = field(default_factory=dict)


def _model_type_from(
    obj: Any,
    *,
    name: str,
    params: Mapping[str, Param] | None = None,
    doc: str | None = None,
    generated: GeneratedLayers | None = None,
    group_keys: Mapping[str, str] | None = None,
) -> ModelType:
    """Registry coercion: accept a :class:`ModelType` or an expander function."""
    if isinstance(obj, ModelType):
        given = (params, doc, generated, group_keys)
        if any(option is not None for option in given):
            raise RegistrationError(
                f"model type {name!r}: options given with a ModelType"
            )
        return obj
    if not callable(obj):
        raise RegistrationError(
            f"model type {name!r}: expected an expander function or a ModelType"
        )
    summary = (inspect.getdoc(obj) or "").strip().split("\n")[0]
    return ModelType(
        params=dict(params or {}),
        expand=obj,
        doc=doc or summary,
        generated=generated,
        group_keys=dict(group_keys or {}),
    )


model_types: Registry[ModelType] = Registry(
    "model type", coerce=_model_type_from, on_miss=load_plugins
)
"""The model type registry. Register an expander function (with ``params=``) or a
:class:`ModelType`."""


# ------------------------------------------------------------------------------------
# Built-in model types.
# ------------------------------------------------------------------------------------

_IN_FEATURES = Param(int, REQUIRED, "input size", low=1)
_INPUT_SIZE = Param(int, REQUIRED, "size of one input dimension", low=1)
_SEQUENTIAL: Final = {"in_features": _IN_FEATURES}
_MLP: Final = {
    "in_features": Param(int, 8, "input size (null: the data's, or 8)", low=1),
    "out_features": Param(int, 2, "output size (null: the data's, or 2)", low=1),
    "depth": Param(int, 2, "number of hidden layers", low=0),
    "width": Param(int, 32, "size of every hidden layer", low=1),
    "bias": Param(bool, True, "every linear layer has a bias"),
}
#: The mlp's keys besides its params: choices shared by its layers, and per-layer
#: settings.
_MLP_CHOICES: Final = (
    "hidden_activation",
    "output_activation",
    "weight_init",
    "bias_init",
)


@model_types.register("sequential", params=_SEQUENTIAL)
def sequential(model: Mapping[str, Any], key: str) -> Expansion:
    """Layers listed by name, each with its type and options.

    The input is ``in_features: N``, the shorthand of ``input_shape: [N]``, or
    ``input_shape: [...]`` for a sample with more dimensions. With a data set, the
    data sizes the input and the last layer (:mod:`annfactory.sizing`).
    """
    allowed = ("type", "in_features", "input_shape", "layers")
    check_keys(model, allowed, key, "model key")
    return Expansion(_input_shape(model, key), _sequential_layers(model, key))


def _input_shape(model: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """``input_shape: [C, H, W]``, or ``in_features: N`` as the shorthand of ``[N]``.

    Null or absent, both are the data's with a data set (:mod:`annfactory.sizing`
    fills them in before this runs); without one, the model needs a size.
    """
    shape, size = model.get("input_shape"), model.get("in_features")
    if shape is None and size is None:
        raise ConfigError(
            f"{key}.in_features",
            "the model has no input size (in_features and input_shape are null).",
            f"Set {key}.in_features=<N>, or {key}.input_shape=<[C,H,W]> for images "
            "(with task=train, null takes the data's).",
        )
    if shape is None:
        return (_IN_FEATURES.validate(size, f"{key}.in_features"),)
    if size is not None:
        raise ConfigError(
            f"{key}.input_shape",
            "both input_shape and in_features are given.",
            "Keep one: in_features: N is the shorthand of input_shape: [N].",
        )
    if not isinstance(shape, list | tuple) or not shape:
        raise ConfigError(
            f"{key}.input_shape",
            f"{shape!r} is not a list of sizes.",
            "Give one size per dimension of a sample, e.g. [3, 32, 32].",
        )
    return tuple(
        _INPUT_SIZE.validate(size, f"{key}.input_shape[{index}]")
        for index, size in enumerate(shape)
    )


def _sequential_layers(model: Mapping[str, Any], key: str) -> list[LayerEntry]:
    nodes = model.get("layers")
    if nodes is None or (isinstance(nodes, Mapping) and not nodes):
        raise ConfigError(
            f"{key}.layers", "the network has no layers.", "Add at least one layer."
        )
    require_mapping(nodes, f"{key}.layers", "a mapping of layer names to layers")
    entries = []
    for name, node in nodes.items():
        layer_key = f"{key}.layers.{name}"
        require_mapping(node, layer_key, "a layer")
        entry = LayerEntry(str(name))
        entry.update(node, layer_key)
        entries.append(entry)
    return entries


def _mlp_names(model: Mapping[str, Any]) -> list[str] | None:
    """The layers of an mlp of this ``depth``; None for a depth that is no count."""
    depth = model.get("depth")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        return None
    return mlp_layer_names(depth)


def _mlp_settings_for(name: str) -> dict[str, Any] | None:
    """``hidden<N>``: the mlp of depth N has it."""
    number = re.fullmatch(r"hidden([1-9]\d*)", name)
    return {"depth": int(number.group(1))} if number else None


_MLP_LAYERS: Final = GeneratedLayers(
    names=_mlp_names,
    made_from=("depth", "width"),
    count_key="depth",
    settings_for=_mlp_settings_for,
)


@model_types.register(
    "mlp",
    params=_MLP,
    generated=_MLP_LAYERS,
    group_keys={"init": "weight_init", "activation": "hidden_activation"},
)
def mlp(model: Mapping[str, Any], key: str) -> Expansion:
    """``depth`` hidden linear layers of ``width`` units, then ``out``."""
    allowed = ("type", *_MLP, *_MLP_CHOICES, "layers")
    check_keys(model, allowed, key, "mlp key")
    # null sizes are the defaults here; with a data set, parse_run has filled them.
    given = {name: model[name] for name in _MLP if model.get(name) is not None}
    sizes = validate_params(given, _MLP, key, "model 'mlp'")
    names = mlp_layer_names(sizes["depth"])
    entries = [_mlp_layer(model, key, sizes, name) for name in names]
    overrides = model.get("layers") or {}
    require_mapping(overrides, f"{key}.layers", "a mapping of layer names to overrides")
    by_name = {entry.name: entry for entry in entries}
    for name, node in overrides.items():
        layer_key = f"{key}.layers.{name}"
        if name not in by_name:
            raise UnknownNameError(
                layer_key, "layer", name, names, where=f" (depth={sizes['depth']})"
            )
        require_mapping(node, layer_key, "a layer")
        by_name[name].update(node, layer_key)
    return Expansion((sizes["in_features"],), entries)


def _mlp_layer(
    model: Mapping[str, Any], key: str, sizes: Mapping[str, Any], name: str
) -> LayerEntry:
    """One linear layer of an mlp, each field pointing at the mlp key it came from."""
    hidden = name != "out"
    role = "hidden_activation" if hidden else "output_activation"
    size = "width" if hidden else "out_features"
    fields = {
        "type": "linear",
        "bias": sizes["bias"],
        "weight_init": model.get("weight_init", "default"),
        "bias_init": model.get("bias_init", "default"),
        "out_features": sizes[size],
        "activation": model.get(role, "relu" if hidden else "identity"),
    }
    shared = ("type", "bias", "weight_init", "bias_init")
    keys = {
        **{field: f"{key}.{field}" for field in shared},
        "out_features": f"{key}.{size}",
        "activation": f"{key}.{role}",
    }
    return LayerEntry(name, fields, keys)


def mlp_layer_names(depth: int) -> list[str]:
    """The layers of an ``mlp``: ``hidden1`` ... ``hidden<depth>``, then ``out``."""
    return [f"hidden{index}" for index in range(1, depth + 1)] + ["out"]
