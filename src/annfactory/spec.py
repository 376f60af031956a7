"""The network spec: typed, validated, resolved, and free of torch.

:func:`parse_run` turns plain data (a composed config as a container, or a saved
``spec.yaml``) into a :class:`RunSpec`. Every check that can be made before allocation
is made here, and every error names its full config path. The factory takes only the
spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Final

from annfactory.activations import activations
from annfactory.errors import (
    ConfigError,
    UnknownNameError,
    ascii_lookalike,
    closest_name,
    non_ascii_character,
)
from annfactory.inits import InitScheme, Nonlinearity, inits
from annfactory.layers import LayerType, layers
from annfactory.models import LayerEntry, mlp_layer_names, model_types
from annfactory.params import Param, validate_params
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

DTYPES: Final = ("float32", "float64", "bfloat16", "float16")
DEVICES: Final = ("cpu", "cuda", "meta")
#: The built-in model types (the registry :data:`annfactory.models.model_types` has
#: every registered one).
MODEL_TYPES: Final = tuple(model_types.names())
_RUN_KEYS: Final = (
    "model",
    "init",
    "activation",
    "seed",
    "batch_size",
    "device",
    "dtype",
    "compile",
    "task",  # the task's options, validated by the task (annfactory.tasks)
)
LAYER_FIELDS: Final = ("type", "activation", "weight_init", "bias_init")
#: Consecutive layers that read the same, from this many on, are folded into one
#: entry of :meth:`NetworkSpec.summary_line`.
FOLD_AT: Final = 3
_PARAMETER_FIELDS: Final = {"weight": "weight_init", "bias": "bias_init"}

_SEED = Param(int, 0, "seed of every parameter's generator", low=0, high=2**63 - 1)
_BATCH_SIZE = Param(int, 5, "rows in the random input batch", low=1)
_COMPILE = Param(bool, False, "run the forward pass through torch.compile")
_DTYPE = Param(str, "float32", "parameter and input dtype", choices=DTYPES)


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
    """Everything a run needs: the network and how to build and feed it."""

    network: NetworkSpec
    seed: int = 0
    batch_size: int = 5
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`parse_run` turns back into an equal spec."""
        return {
            "model": self.network.to_dict(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "device": self.device,
            "dtype": self.dtype,
            "compile": self.compile,
        }


# ------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------


def parse_run(data: Mapping[str, Any], strict: bool = True) -> RunSpec:
    """Validate a whole run config (plain data) and resolve it into a :class:`RunSpec`.

    Args:
        data: The config: ``model`` and optionally ``init``, ``activation``, ``seed``,
            ``batch_size``, ``device``, ``dtype``.
        strict: Refuse other top-level keys (a typo such as ``sede``). With False they
            are ignored, for configs of applications that hold keys of their own.

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    _require_mapping(data, "", "the config")
    _reject_targets(data, "")
    if strict:
        _check_keys(data, _RUN_KEYS, "", "top-level key")
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
    return RunSpec(
        network=network,
        seed=_SEED.validate(data.get("seed", 0), "seed"),
        batch_size=_BATCH_SIZE.validate(data.get("batch_size", 5), "batch_size"),
        device=validate_device(data.get("device", "cpu")),
        dtype=_DTYPE.validate(data.get("dtype", "float32"), "dtype"),
        compile=_COMPILE.validate(data.get("compile", False), "compile"),
    )


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
    model_type = model_types.get(model.get("type", "sequential"), key=f"{key}.type")
    expansion = model_type.expand(model, key)
    entries = expansion.layers
    # The top-level choices are checked even where no layer takes them.
    if init is not None:
        _parse_init(init, "init", ("linear", None))
    if activation is not None:
        _parse_choice(activations, activation, "activation", ActivationSpec)
    _apply_global_choices(entries, init, activation)
    resolved = []
    (size,) = expansion.input_shape
    for entry in entries:
        layer = _parse_layer(entry, size)
        resolved.append(layer)
        size = layer.out_features
    _check_activation_names(resolved, key)
    (in_features,) = expansion.input_shape
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
    model_type = model_types.get(model.get("type", "sequential"), key="model.type")
    entries = model_type.expand(model, "model").layers
    dense = [entry.name for entry in entries if _is_dense(entry)]
    return dense, dense[:-1]


def _apply_global_choices(
    entries: list[LayerEntry], init: Any, activation: Any
) -> None:
    """The top-level groups: ``init`` for every dense layer's weight, ``activation``
    for every dense layer but the output one."""
    if init is None and activation is None:
        return
    dense = [entry for entry in entries if _is_dense(entry)]
    for index, entry in enumerate(dense):
        if init is not None:
            entry.fields["weight_init"], entry.keys["weight_init"] = init, "init"
        if activation is not None and index < len(dense) - 1:
            entry.fields["activation"] = activation
            entry.keys["activation"] = "activation"


def _is_dense(entry: LayerEntry) -> bool:
    layer_type = entry.fields.get("type")
    if not isinstance(layer_type, str):
        return False  # reported with its path when the layer is parsed
    try:
        return layers.get(layer_type).dense  # may load a plugin that provides it
    except UnknownNameError:
        return False


def _parse_layer(entry: LayerEntry, in_features: int) -> LayerSpec:
    name, fields, layer_key = entry.name, entry.fields, entry.path
    keys = {field: entry.key(field) for field in {*fields, *entry.keys}}
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
_CHOICE_SLOTS: Final[dict[str, Registry[Any]]] = {
    "activation": activations,
    "hidden_activation": activations,
    "output_activation": activations,
    "init": inits,
    "weight_init": inits,
    "bias_init": inits,
}


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


_GPU_WORDS = ("gpu", "nvidia", "cuda")


def validate_device(value: Any) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``meta``; whether it exists is checked when
    the network is built (that needs torch)."""
    if isinstance(value, str) and re.fullmatch(r"cuda:\d+", value):
        return value
    if isinstance(value, str) and value in DEVICES:
        return value
    suggestion = None
    if isinstance(value, str):
        word = ascii_lookalike(value).strip().lower()
        if word in DEVICES:
            suggestion = word
        elif word in _GPU_WORDS or word.startswith(("cuda", "gpu")):
            number = re.search(r"\d+", word)
            suggestion = f"cuda:{number.group()}" if number else "cuda"
        else:
            suggestion = closest_name(value, DEVICES)
    odd = non_ascii_character(value) if isinstance(value, str) else None
    message = f"unknown device {value!r}"
    if odd is not None:
        message += f": it contains the non-ASCII character {odd}"
    message += "." + (f" Did you mean {suggestion!r}?" if suggestion else "")
    raise ConfigError("device", message, "Valid devices: cpu, cuda, cuda:N, meta.")


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
