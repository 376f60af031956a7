"""The network spec: typed, validated, resolved, and free of torch.

:func:`parse_run` turns plain data (a composed config as a container, or a saved
``spec.yaml``) into a :class:`RunSpec`. Every check that can be made before allocation
is made here, and every error names its full config path. The factory takes only the
spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Final

from annfactory.activations import activations
from annfactory.errors import (
    ConfigError,
    UnknownNameError,
    ascii_lookalike,
    non_ascii_character,
)
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
from annfactory.inits import InitScheme, Nonlinearity, inits
from annfactory.layers import LayerType, layers
from annfactory.params import REQUIRED, Param, validate_params
from annfactory.registry import Registry

__all__ = [
    "DEVICES",
    "DTYPES",
    "FOLD_AT",
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
    "validate_device",
]

MODEL_TYPES: Final = ("sequential", "mlp")
LAYER_FIELDS: Final = ("type", "activation", "weight_init", "bias_init")
#: Consecutive layers that read the same, from this many on, are folded into one
#: entry of :meth:`NetworkSpec.summary_line`.
FOLD_AT: Final = 3
_PARAMETER_FIELDS: Final = {"weight": "weight_init", "bias": "bias_init"}

_IN_FEATURES = Param(int, REQUIRED, "input size", low=1)
_MLP: Final = {
    "in_features": _IN_FEATURES,
    "out_features": Param(int, REQUIRED, "output size", low=1),
    "depth": Param(int, 2, "number of hidden layers", low=0),
    "width": Param(int, 32, "size of every hidden layer", low=1),
    "bias": Param(bool, True, "every linear layer has a bias"),
}


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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
        name: The attribute name in the layer, e.g. ``weight``.
        shape: Its shape.
        init: The scheme that fills it, fully resolved (never ``default``).
        from_default: ``init`` is the layer type's own PyTorch default.
    """

    name: str
    shape: tuple[int, ...]
    init: InitSpec
    from_default: bool

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
    """One layer: its type, sizes, options, activation and inits."""

    name: str
    type: str
    in_features: int
    out_features: int
    options: Mapping[str, Any]
    activation: ActivationSpec
    weight_init: InitSpec
    bias_init: InitSpec
    parameters: tuple[ParameterSpec, ...]

    @property
    def num_params(self) -> int:
        return sum(parameter.numel for parameter in self.parameters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            **self.options,
            "activation": self.activation.to_dict(),
            "weight_init": self.weight_init.to_dict(),
            "bias_init": self.bias_init.to_dict(),
        }


@dataclass(frozen=True)
class NetworkSpec:
    """A fully connected network: the input size and the layers in order."""

    in_features: int
    layers: tuple[LayerSpec, ...]

    @property
    def out_features(self) -> int:
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
        parts = [str(self.in_features)]
        runs = groupby(
            self.layers,
            key=lambda layer: (layer.type, layer.out_features, layer.activation),
        )
        for _, grouped in runs:
            run = list(grouped)
            first, last = run[0], run[-1]
            shown = f"({first.out_features}, {first.activation.describe()})"
            if len(run) >= FOLD_AT:
                parts.append(f"{first.name}..{last.name}{shown} x{len(run)}")
            else:
                parts.extend(f"{layer.name}{shown}" for layer in run)
        return " -> ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "sequential",
            "in_features": self.in_features,
            "layers": {layer.name: layer.to_dict() for layer in self.layers},
        }


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs: the network and how to build and feed it.

    The plain fields are the top-level keys of :data:`annfactory.groups.KEYS`;
    ``extras`` holds the parsed values of plugins' top-level groups, by group name.
    """

    network: NetworkSpec
    seed: int = 0
    batch_size: int = 5
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)

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

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    _require_mapping(data, "", "the config")
    _reject_targets(data, "")
    chosen = _top_level_groups(data, strict)
    if "model" not in data:
        raise ConfigError(
            "model", "no model is chosen.", "Add model=demo or model=mlp."
        )
    network = parse_network(
        data["model"],
        key="model",
        init=data.get("init"),
        activation=data.get("activation"),
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
    return RunSpec(network=network, **values, extras=extras)


def _top_level_groups(data: Mapping[str, Any], strict: bool) -> dict[str, ConfigGroup]:
    """The top-level groups among the keys of ``data``; with ``strict``, any other
    key that is not one of :data:`~annfactory.groups.KEYS` is refused."""
    chosen: dict[str, ConfigGroup] = {}
    for name in data:
        if name in KEYS:
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


def parse_network(
    model: Any,
    key: str = "model",
    init: Any = None,
    activation: Any = None,
) -> NetworkSpec:
    """Validate a ``model`` node and resolve it into a :class:`NetworkSpec`.

    Args:
        model: The model node: ``type`` (sequential or mlp) and its keys.
        key: Its config path.
        init: The top-level ``init`` choice: the weight init of every dense layer.
        activation: The top-level ``activation`` choice: the activation of every dense
            layer except the output layer.
    """
    _require_mapping(model, key, "a model")
    _reject_targets(model, key)
    _reject_targets(init, "init")
    _reject_targets(activation, "activation")
    model_type = model.get("type", "sequential")
    if model_type not in MODEL_TYPES:
        raise UnknownNameError(f"{key}.type", "model type", model_type, MODEL_TYPES)
    if model_type == "mlp":
        in_features, entries = _expand_mlp(model, key)
    else:
        _check_keys(model, ("type", "in_features", "layers"), key, "model key")
        in_features = _IN_FEATURES.validate(
            model.get("in_features"), f"{key}.in_features"
        )
        entries = _sequential_entries(model, key)
    # The top-level choices are checked even where no layer takes them.
    if init is not None:
        _parse_init(init, "init", ("linear", None))
    if activation is not None:
        _parse_choice(activations, activation, "activation", ActivationSpec)
    _apply_global_choices(entries, init, activation)
    resolved = []
    size = in_features
    for name, fields, keys in entries:
        layer = _parse_layer(name, fields, keys, size)
        resolved.append(layer)
        size = layer.out_features
    _check_activation_names(resolved, key)
    return NetworkSpec(in_features=in_features, layers=tuple(resolved))


def _check_activation_names(resolved: list[LayerSpec], key: str) -> None:
    """No layer may be named like another layer's activation module.

    The network adds each activation other than identity as a child named
    ``<layer>_act`` (see :class:`annfactory.network.Network`); a layer of that name
    would take its place. Saved runs' weight names depend on this naming, so the
    clash is refused rather than the generated name changed.
    """
    names = {layer.name for layer in resolved}
    for layer in resolved:
        generated = f"{layer.name}_act"
        if layer.activation.name == "identity" or generated not in names:
            continue
        other = next(
            f"{generated}{n}"
            for n in range(2, len(names) + 3)
            if f"{generated}{n}" not in names
        )
        raise ConfigError(
            f"{key}.layers.{generated}",
            f"the layer name {generated!r} is taken by the activation "
            f"({layer.activation.name}) of layer {layer.name!r}.",
            f"Give the layer another name, e.g. {other}: each activation is a "
            "module named <layer>_act.",
        )


# A layer before resolution: its name, its fields, and each field's config path.
_Entry = tuple[str, dict[str, Any], dict[str, str]]


def _sequential_entries(model: Mapping[str, Any], key: str) -> list[_Entry]:
    nodes = model.get("layers")
    if nodes is None or (isinstance(nodes, Mapping) and not nodes):
        raise ConfigError(
            f"{key}.layers", "the network has no layers.", "Add at least one layer."
        )
    _require_mapping(nodes, f"{key}.layers", "a mapping of layer names to layers")
    entries: list[_Entry] = []
    for name, node in nodes.items():
        layer_key = f"{key}.layers.{name}"
        _require_mapping(node, layer_key, "a layer")
        entries.append(
            (str(name), dict(node), {field: f"{layer_key}.{field}" for field in node})
        )
    return entries


def _expand_mlp(model: Mapping[str, Any], key: str) -> tuple[int, list[_Entry]]:
    allowed = (
        "type",
        *_MLP,
        "hidden_activation",
        "output_activation",
        "weight_init",
        "bias_init",
        "layers",
    )
    _check_keys(model, allowed, key, "mlp key")
    sizes = validate_params(
        {name: model[name] for name in _MLP if name in model}, _MLP, key, "model 'mlp'"
    )
    shared = {
        "type": "linear",
        "bias": sizes["bias"],
        "weight_init": model.get("weight_init", "default"),
        "bias_init": model.get("bias_init", "default"),
    }
    shared_keys = {
        "type": f"{key}.type",
        "bias": f"{key}.bias",
        "weight_init": f"{key}.weight_init",
        "bias_init": f"{key}.bias_init",
    }
    names = mlp_layer_names(sizes["depth"])
    entries: list[_Entry] = []
    for name in names:
        hidden = name != "out"
        role = "hidden_activation" if hidden else "output_activation"
        fields = {
            **shared,
            "out_features": sizes["width"] if hidden else sizes["out_features"],
            "activation": model.get(role, "relu" if hidden else "identity"),
        }
        keys = {
            **shared_keys,
            "out_features": f"{key}.{'width' if hidden else 'out_features'}",
            "activation": f"{key}.{role}",
        }
        entries.append((name, fields, keys))
    overrides = model.get("layers") or {}
    _require_mapping(
        overrides, f"{key}.layers", "a mapping of layer names to overrides"
    )
    by_name = {entry[0]: entry for entry in entries}
    for name, node in overrides.items():
        layer_key = f"{key}.layers.{name}"
        if name not in by_name:
            raise UnknownNameError(
                layer_key, "layer", name, names, where=f" (depth={sizes['depth']})"
            )
        _require_mapping(node, layer_key, "a layer")
        _, fields, keys = by_name[name]
        fields.update(node)
        keys.update({field: f"{layer_key}.{field}" for field in node})
    return sizes["in_features"], entries


def mlp_layer_names(depth: int) -> list[str]:
    """The layers of an ``mlp``: ``hidden1`` ... ``hidden<depth>``, then ``out``."""
    return [f"hidden{index}" for index in range(1, depth + 1)] + ["out"]


def layers_set_by_groups(model: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The layers whose settings the top-level groups replace.

    Args:
        model: A model node (plain data), as :func:`parse_network` takes it.

    Returns:
        The layers whose weight init ``init`` sets (every dense layer), and those
        whose activation ``activation`` sets (every dense layer but the last).

    Raises:
        ConfigError: The model node is invalid.
    """
    _require_mapping(model, "model", "a model")
    if model.get("type", "sequential") == "mlp":
        entries = _expand_mlp(model, "model")[1]
    else:
        entries = _sequential_entries(model, "model")
    dense = [entry[0] for entry in entries if _is_dense(entry)]
    return dense, dense[:-1]


def _apply_global_choices(entries: list[_Entry], init: Any, activation: Any) -> None:
    """The top-level groups: ``init`` for every dense layer's weight, ``activation``
    for every dense layer but the output one."""
    if init is None and activation is None:
        return
    dense = [entry for entry in entries if _is_dense(entry)]
    for index, (_, fields, keys) in enumerate(dense):
        if init is not None:
            fields["weight_init"], keys["weight_init"] = init, "init"
        if activation is not None and index < len(dense) - 1:
            fields["activation"], keys["activation"] = activation, "activation"


def _is_dense(entry: _Entry) -> bool:
    layer_type = entry[1].get("type")
    if not isinstance(layer_type, str):
        return False  # reported with its path when the layer is parsed
    try:
        return layers.get(layer_type).dense  # may load a plugin that provides it
    except UnknownNameError:
        return False


def _parse_layer(
    name: str, fields: Mapping[str, Any], keys: Mapping[str, str], in_features: int
) -> LayerSpec:
    layer_key = keys.get("type", "").rpartition(".")[0] or f"model.layers.{name}"
    if not name.isidentifier() or not name.isascii():
        raise _layer_name_error(name, layer_key)
    if "type" not in fields:
        raise ConfigError(
            f"{layer_key}.type",
            "the layer has no type.",
            f"Set it, e.g. +layer@{layer_key}=linear "
            f"(valid: {', '.join(layers.names())}).",
        )
    layer_type: LayerType = _lookup(layers, fields["type"], keys["type"])
    options_given = {k: v for k, v in fields.items() if k not in LAYER_FIELDS}
    for option in options_given:
        if option not in layer_type.params:
            raise UnknownNameError(
                keys[option],
                "layer key",
                option,
                [*LAYER_FIELDS, *layer_type.params],
                where=f" for layer type {fields['type']!r}",
            )
    options = {}
    for option, param in layer_type.params.items():
        key = keys.get(option, f"{layer_key}.{option}")
        if option in options_given:
            options[option] = param.validate(options_given[option], key)
        elif param.required:
            raise ConfigError(
                key,
                f"layer type {fields['type']!r} needs {option!r} ({param.allowed()}).",
                f"Set {key}=<value>.",
            )
        else:
            options[option] = param.default
    activation = _parse_choice(
        activations,
        fields.get("activation", "identity"),
        keys.get("activation", f"{layer_key}.activation"),
        ActivationSpec,
    )
    nonlinearity = activations.get(activation.name).nonlinearity(activation.params)
    chosen = {
        field: _parse_init(
            fields.get(field, "default"),
            keys.get(field, f"{layer_key}.{field}"),
            nonlinearity,
        )
        for field in ("weight_init", "bias_init")
    }
    shapes = _shapes(layer_type, fields["type"], in_features, options, layer_key)
    parameters = []
    for parameter, shape in shapes.items():
        field = _PARAMETER_FIELDS.get(parameter)
        choice = chosen[field] if field else InitSpec("default", {})
        key = keys.get(field, f"{layer_key}.{field}") if field else layer_key
        parameters.append(
            _resolve_parameter(
                layer_type,
                fields["type"],
                name,
                parameter,
                shape,
                choice,
                key,
                in_features,
                options,
            )
        )
    for parameter, field in _PARAMETER_FIELDS.items():
        if parameter not in shapes and chosen[field].name != "default":
            key = keys.get(field, f"{layer_key}.{field}")
            raise ConfigError(
                key,
                f"layer {name!r} ({fields['type']}) has no {parameter}, so "
                f"{chosen[field].name!r} cannot apply.",
                f"Remove it or set {key}=default.",
            )
    out_features = layer_type.out_features(in_features, options)
    return LayerSpec(
        name=name,
        type=fields["type"],
        in_features=in_features,
        out_features=out_features,
        options=options,
        activation=activation,
        weight_init=chosen["weight_init"],
        bias_init=chosen["bias_init"],
        parameters=tuple(parameters),
    )


_TARGET: Final = "_target_"
#: Slots that name an activation or an init, by the last part of their config path.
_CHOICE_SLOTS: Final = CHOICE_SLOTS


def _reject_targets(node: Any, key: str) -> None:
    """Refuse a ``_target_`` key anywhere in ``node``, before anything is looked up.

    Hydra's ``instantiate`` would import and call what it names; annfactory builds
    only registered entries and never reads it.
    """
    if isinstance(node, Mapping):
        if _TARGET in node:
            raise _target_error(key)
        for name, child in node.items():
            _reject_targets(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            _reject_targets(child, f"{key}[{index}]")


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


def _layer_name_error(name: str, key: str) -> ConfigError:
    """A layer name that cannot be a module attribute (``fc-1``, a Cyrillic letter)."""
    plain = ascii_lookalike(name)
    odd = non_ascii_character(name)
    if odd is not None:
        problem = f"layer name {name!r} contains the non-ASCII character {odd}."
    else:
        problem = f"layer name {name!r} is not a Python identifier."
    example = plain if plain.isascii() and plain.isidentifier() else "hidden1"
    return ConfigError(
        key, problem, f"Use ASCII letters, digits and underscores, e.g. {example}."
    )


def _parse_choice(registry: Registry[Any], node: Any, key: str, cls: type[Any]) -> Any:
    """A registry name with parameters: a string, or a mapping with ``name``."""
    if isinstance(node, str):
        name, given, name_key = node, {}, key
    elif isinstance(node, Mapping):
        if _TARGET in node:  # parse_network refuses it first; kept for direct calls
            raise _target_error(key)
        given = {k: v for k, v in node.items() if k != "name"}
        if "name" not in node:
            raise ConfigError(
                f"{key}.name",
                f"no {registry.kind} is named.",
                f"Set {key}=<name> (valid: {', '.join(registry.names())}).",
            )
        name, name_key = node["name"], f"{key}.name"
    else:
        raise ConfigError(
            key,
            f"{node!r} is not a {registry.kind} name or mapping.",
            f"Use one of: {', '.join(registry.names())}.",
        )
    entry = _lookup(registry, name, name_key)
    params = validate_params(given, entry.params, key, f"{registry.kind} {name!r}")
    return cls(name=name, params=params)


def _parse_init(node: Any, key: str, nonlinearity: Nonlinearity) -> InitSpec:
    choice: InitSpec = _parse_choice(inits, node, key, InitSpec)
    scheme: InitScheme = inits.get(choice.name)
    params = dict(choice.params)
    if scheme.resolve_auto is not None:
        params = scheme.resolve_auto(params, nonlinearity)
    if scheme.check is not None:
        problem = scheme.check(params)
        if problem:
            raise ConfigError(
                key, f"init {choice.name!r} {problem}.", "Fix its parameters."
            )
    return InitSpec(choice.name, params)


def _resolve_parameter(
    layer_type: LayerType,
    type_name: str,
    layer_name: str,
    parameter: str,
    shape: tuple[int, ...],
    choice: InitSpec,
    key: str,
    in_features: int,
    options: Mapping[str, Any],
) -> ParameterSpec:
    from_default = choice.name == "default"
    if from_default:
        try:
            if layer_type.default_init is None:
                raise LookupError(parameter)
            name, params = layer_type.default_init(parameter, in_features, options)
        except LookupError:
            raise ConfigError(
                key,
                f"layer type {type_name!r} declares no default init for {parameter!r}.",
                "Name an init for it instead of 'default'.",
            ) from None
        choice = _parse_init({"name": name, **params}, key, ("linear", None))
    scheme = inits.get(choice.name)
    if len(shape) < scheme.min_dim:
        raise ConfigError(
            key,
            f"init {choice.name!r} needs a tensor of at least {scheme.min_dim} "
            f"dimensions; {layer_name}.{parameter} has shape {list(shape)}.",
            "Use zeros, constant, uniform, normal or default for it.",
        )
    return ParameterSpec(parameter, tuple(shape), choice, from_default)


def _shapes(
    layer_type: LayerType,
    type_name: str,
    in_features: int,
    options: Mapping[str, Any],
    key: str,
) -> dict[str, tuple[int, ...]]:
    if layer_type.shapes is not None:
        return layer_type.shapes(in_features, options)
    # A layer registered as a plain class: learn its parameters on the meta device.
    import torch

    try:
        with torch.device("meta"):
            module = layer_type.build(in_features, **options)
    except Exception as error:
        raise ConfigError(
            key, f"layer type {type_name!r} cannot be built: {error}"
        ) from error
    return {name: tuple(p.shape) for name, p in module.named_parameters(recurse=False)}


def _lookup(registry: Registry[Any], name: Any, key: str) -> Any:
    if not isinstance(name, str):
        raise ConfigError(
            key,
            f"{name!r} is not a {registry.kind} name.",
            f"Use one of: {', '.join(registry.names())}.",
        )
    return registry.get(name, key=key)


def _require_mapping(node: Any, key: str, what: str) -> None:
    if not isinstance(node, Mapping):
        raise ConfigError(
            key or "<root>", f"{node!r} is not {what}.", "Give a mapping."
        )


def _check_keys(node: Mapping[str, Any], allowed: Any, key: str, what: str) -> None:
    for name in node:
        if name not in allowed:
            path = f"{key}.{name}" if key else str(name)
            raise UnknownNameError(path, what, name, allowed)
