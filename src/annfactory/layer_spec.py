"""The parsing of layers: from a ``model`` node (plain data) to a :class:`NetworkSpec`.

The model type (:mod:`annfactory.models`) expands its node into layers before
resolution; each is then resolved here, the same way for every model type: its
layer type and options, its activation, and the init of each of its parameters.
Every check that can be made before allocation is made here, and every error names
its full config path. No torch here (but for the fallback of a layer type that
declares no shape rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from math import isqrt, prod
from typing import Any, Final

from annfactory.activations import activations
from annfactory.choices import lookup, parse_choice, parse_init, reject_targets
from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    UnknownNameError,
    ascii_lookalike,
    non_ascii_character,
)
from annfactory.fixes import command, flow
from annfactory.inits import Nonlinearity, inits
from annfactory.layer_shapes import (
    CHANNELS,
    IDS,
    SEQUENCE,
    VECTOR,
    Shape,
    layout_of,
    with_layout,
)
from annfactory.layers import (
    LAYER_FIELDS,
    PROJECTION,
    InputRankError,
    LayerShape,
    LayerType,
    build_on_meta,
    layers,
)
from annfactory.models import LayerEntry, model_types
from annfactory.params import require_mapping
from annfactory.spec_types import (
    ActivationSpec,
    InitSpec,
    LayerSpec,
    NetworkSpec,
    ParameterSpec,
)

__all__ = [
    "LAYER_FIELDS",
    "input_layout",
    "layers_set_by_groups",
    "model_input_layout",
    "parse_choice",
    "parse_init",
    "parse_layer",
    "parse_network",
    "reject_targets",
]

#: The parameters that the fields ``weight_init`` and ``bias_init`` set.
_PARAMETER_FIELDS: Final = {"weight": "weight_init", "bias": "bias_init"}
#: The nonlinearity a default init is resolved for: the layer's own init knows none.
_LINEAR: Final[Nonlinearity] = ("linear", None)


def parse_network(
    model: Any,
    key: str = "model",
    init: Any = None,
    activation: Any = None,
) -> NetworkSpec:
    """Validate a ``model`` node and resolve it into a :class:`NetworkSpec`.

    Args:
        model: The model node: ``type`` (a registered model type, ``sequential`` if
            omitted) and its keys.
        key: Its config path.
        init: The top-level ``init`` choice: the weight init of every weighted layer
            (:attr:`LayerType.weighted <annfactory.layers.LayerType.weighted>`).
        activation: The top-level ``activation`` choice: the activation of every
            weighted layer except the last.

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    require_mapping(model, key, "a model")
    reject_targets(model, key)
    reject_targets(init, "init")
    reject_targets(activation, "activation")
    model_type = model_types.get(model.get("type", "sequential"), key=f"{key}.type")
    expansion = model_type.expand(model, key)
    # The top-level choices are checked even where no layer takes them.
    if init is not None:
        parse_init(init, "init", _LINEAR)
    if activation is not None:
        parse_choice(activations, activation, "activation", ActivationSpec)
    _apply_global_choices(expansion.layers, init, activation)
    resolved: list[LayerSpec] = []
    shape: Shape = with_layout(
        expansion.input_shape,
        input_layout(expansion.layers, len(expansion.input_shape)),
    )
    first = shape
    # The first layer's input is the model's: a fix of its rank is a fix of that.
    sequential = model.get("type", "sequential") == "sequential"
    input_fix = partial(_model_input_fix, model, key, shape) if sequential else None
    for entry in expansion.layers:
        layer = parse_layer(
            entry, shape, init=init, activation=activation, input_fix=input_fix
        )
        resolved.append(layer)
        shape = layer.output_shape
        input_fix = None
    _check_activation_names(resolved, f"{key}.layers")
    return NetworkSpec(input_shape=first, layers=tuple(resolved))


def input_layout(entries: Sequence[LayerEntry], rank: int) -> str:
    """The layout of a network's input of ``rank`` dimensions: the one its first
    layer that takes a layout (:attr:`LayerType.takes`) takes, through the transposes
    before it; a sequence is 2-D, ids 1-D. Else: a vector, or channels first (the
    layouts before sequences)."""
    return _layout_decider(entries, rank)[0]


def model_input_layout(model: Mapping[str, Any], rank: int) -> tuple[str, str | None]:
    """The layout a model's input of ``rank`` dimensions takes, and the layer that
    decides it (None: no layer does). The model node must expand."""
    model_type = model_types.get(model.get("type", "sequential"), key="model.type")
    layout, entry = _layout_decider(model_type.expand(model, "model").layers, rank)
    if entry is None:
        return layout, None
    return layout, f"layer {entry.name!r} ({entry.fields['type']})"


def _layout_decider(
    entries: Sequence[LayerEntry], rank: int
) -> tuple[str, LayerEntry | None]:
    """:func:`input_layout`, and the entry that decides it (None: none does)."""
    swaps = 0
    for entry in _flat_entries(entries):
        layer_type = _entry_type(entry)
        takes = None if layer_type is None else layer_type.takes
        if takes == "swap":
            swaps += 1
        elif takes == IDS and rank == 1 and not swaps:
            return IDS, entry
        elif takes in (SEQUENCE, CHANNELS) and rank == 2:
            other = CHANNELS if takes == SEQUENCE else SEQUENCE
            return (takes if swaps % 2 == 0 else other), entry
        elif takes is None and entry.fields.get("type") == "flatten":
            break  # what comes after takes the flattened values, not the input
    return (VECTOR if rank == 1 else CHANNELS), None


def _flat_entries(entries: Sequence[LayerEntry]) -> Iterator[LayerEntry]:
    """The entries in the order their layers run: a block's own layers first."""
    for entry in entries:
        yield from _flat_entries(_nested_entries(entry, quiet=True))
        yield entry


def _model_input_fix(
    model: Mapping[str, Any], key: str, shape: tuple[int, ...], dims: int
) -> str:
    """The command that gives a sequential model an input of ``dims`` dimensions
    for its first layer: its values as one channel (64 -> ``[1, 8, 8]``)."""
    size = prod(shape)
    side = isqrt(size)
    if dims == 3:
        target = [1, side, side] if side * side == size else [1, 8, 8]
    elif dims == 2:
        target = [1, size]
    else:
        target = [size]
    words = [f"~{key}.in_features"] if "in_features" in model else []
    plus = "+" if words else ""
    words.append(f"{plus}{key}.input_shape=[{','.join(map(str, target))}]")
    same = prod(target) == size
    kept = f" (its {size} values as {'x'.join(map(str, target))})" if same else ""
    return f"Give the model an input of that form: {command(*words)}{kept}."


def _check_activation_names(resolved: Sequence[LayerSpec], key: str) -> None:
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
            f"{key}.{generated}",
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
        The layers whose weight init ``init`` sets (every weighted layer), and those
        whose activation ``activation`` sets (every weighted layer but the last).

    Raises:
        ConfigError: The model node is invalid.
    """
    require_mapping(model, "model", "a model")
    model_type = model_types.get(model.get("type", "sequential"), key="model.type")
    entries = model_type.expand(model, "model").layers
    by_init: list[str] = []
    by_activation: list[str] = []
    _collect_set_by_groups(entries, "", by_init, by_activation)
    return by_init, by_activation


def _collect_set_by_groups(
    entries: Sequence[LayerEntry],
    prefix: str,
    by_init: list[str],
    by_activation: list[str],
) -> None:
    """The weighted layers among ``entries`` and in their nested layers (named
    ``block.layers.fc1``), as :func:`layers_set_by_groups` returns them."""
    weighted = [f"{prefix}{entry.name}" for entry in entries if _is_weighted(entry)]
    by_init.extend(weighted)
    by_activation.extend(weighted[:-1])
    for entry in entries:
        children = _nested_entries(entry, quiet=True)
        if children:
            prefix_here = f"{prefix}{entry.name}.layers."
            _collect_set_by_groups(children, prefix_here, by_init, by_activation)


def _apply_global_choices(
    entries: Sequence[LayerEntry], init: Any, activation: Any
) -> None:
    """The top-level groups: ``init`` for every weighted layer's weight (and a
    residual block's projection), ``activation`` for every weighted layer but the
    last one. Nested layers get them when their block is parsed, by the same rule:
    the last weighted layer of a block, whose output is added to the block's input,
    keeps its own activation like the network's output layer."""
    if init is None and activation is None:
        return
    weighted = [entry for entry in entries if _is_weighted(entry)]
    for index, entry in enumerate(weighted):
        if init is not None:
            entry.fields["weight_init"], entry.keys["weight_init"] = init, "init"
        if activation is not None and index < len(weighted) - 1:
            entry.fields["activation"] = activation
            entry.keys["activation"] = "activation"
    if init is not None:
        for entry in entries:
            if entry.fields.get("projection") is True and _is_nested(entry):
                entry.fields["weight_init"], entry.keys["weight_init"] = init, "init"


def _is_weighted(entry: LayerEntry) -> bool:
    layer_type = _entry_type(entry)
    return layer_type is not None and layer_type.weighted


def _is_nested(entry: LayerEntry) -> bool:
    layer_type = _entry_type(entry)
    return layer_type is not None and layer_type.nested


def _entry_type(entry: LayerEntry) -> LayerType | None:
    """The entry's layer type, None if it names none (reported with its path when
    the layer is parsed)."""
    layer_type = entry.fields.get("type")
    if not isinstance(layer_type, str):
        return None
    try:
        return layers.get(layer_type)  # may load a plugin that provides it
    except UnknownNameError:
        return None


def _nested_entries(
    entry: LayerEntry,
    quiet: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> list[LayerEntry]:
    """The layers a nested layer (a residual block) holds, before resolution, each
    field's config path under ``<block>.layers.<name>``.

    Raises:
        ConfigError: ``layers`` is missing, empty or not a mapping of layers (with
            ``quiet``, an empty list instead); for no layers, the command that adds
            one that keeps ``input_shape``.
    """
    if not _is_nested(entry):
        return []
    key = f"{entry.path}.layers"
    nodes = entry.fields.get("layers")
    if quiet and not (isinstance(nodes, Mapping) and nodes):
        return []
    if nodes is None or (isinstance(nodes, Mapping) and not nodes):
        raise ConfigError(
            key,
            f"the {entry.fields['type']} block {entry.name!r} has no layers.",
            _first_body_layer(key, input_shape),
        )
    require_mapping(nodes, key, "a mapping of layer names to layers")
    children = []
    for name, node in nodes.items():
        layer_key = f"{key}.{name}"
        if quiet and not isinstance(node, Mapping):
            continue
        require_mapping(node, layer_key, "a layer")
        if name == PROJECTION:
            raise ConfigError(
                layer_key,
                f"the layer name {PROJECTION!r} is taken by the block's projection.",
                "Give the layer another name.",
            )
        child = LayerEntry(str(name))
        child.keys["type"] = f"{layer_key}.type"  # its path, even without a type
        child.update(node, layer_key)
        children.append(child)
    return children


# ------------------------------------------------------------------------------------
# One layer
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """What resolving a layer's parameters needs to know about the layer."""

    entry: LayerEntry
    layer_type: LayerType
    input_shape: tuple[int, ...]
    options: Mapping[str, Any]
    input_fix: Callable[[int], str] | None = None

    @property
    def type_name(self) -> str:
        return str(self.entry.fields["type"])


def parse_layer(
    entry: LayerEntry,
    input_shape: tuple[int, ...],
    *,
    init: Any = None,
    activation: Any = None,
    input_fix: Callable[[int], str] | None = None,
) -> LayerSpec:
    """Validate one layer and resolve it into a :class:`LayerSpec`.

    Args:
        entry: The layer as its model type expanded it.
        input_shape: The shape of its input (one sample, no batch dimension).
        init: The top-level ``init`` choice, for the layers a nested layer holds.
        activation: The top-level ``activation`` choice, likewise.
        input_fix: For the first layer of a network: the fix, for a number of
            dimensions its input should have, that changes the model's input.

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    layer_type = _layer_type(entry)
    options = _options(entry, layer_type)
    body: tuple[LayerSpec, ...] = ()
    rule_options = options
    if layer_type.nested:
        body = _parse_body(entry, input_shape, init, activation)
        _check_residual_shapes(entry, options, input_shape, body[-1].output_shape)
        rule_options = {**options, "body_shape": body[-1].output_shape}
    layer = _Layer(entry, layer_type, input_shape, rule_options, input_fix)
    activation = parse_choice(
        activations,
        entry.fields.get("activation", "identity"),
        entry.key("activation"),
        ActivationSpec,
    )
    nonlinearity = activations.get(activation.name).nonlinearity(activation.params)
    chosen = {
        field: parse_init(
            entry.fields.get(field, "default"), entry.key(field), nonlinearity
        )
        for field in ("weight_init", "bias_init")
    }
    shape = _layer_shape(layer)
    parameters = _parameters(layer, shape, chosen)
    # A nested layer's own parameters follow its layers', as its module registers
    # them; each of theirs is named by its path in the block (fc1.weight).
    nested = tuple(
        replace(parameter, name=f"{child.name}.{parameter.name}")
        for child in body
        for parameter in child.parameters
    )
    return LayerSpec(
        name=entry.name,
        type=layer.type_name,
        input_shape=input_shape,
        output_shape=_laid_output(input_shape, shape.output),
        options=options,
        activation=activation,
        weight_init=chosen["weight_init"],
        bias_init=chosen["bias_init"],
        parameters=nested + parameters,
        layers=body,
    )


def _laid_output(input_shape: Shape, output: Shape) -> Shape:
    """A layer's output with its layout: the one its shape rule gives, else its
    input's if it keeps the rank (ids aside: numbers come out), else a vector or
    channels first."""
    if hasattr(output, "layout"):
        return output
    layout = layout_of(input_shape)
    if len(output) != len(input_shape) or layout == IDS:
        layout = VECTOR if len(output) == 1 else CHANNELS
    return with_layout(output, layout)


def _first_body_layer(key: str, shape: tuple[int, ...] | None) -> str:
    """The command that gives an empty block at ``key`` a layer that keeps its
    input's shape (so that x + body(x) adds alike)."""
    if shape is None or len(shape) > 3:
        return f"Add at least one layer under {key}."
    if len(shape) == 1:
        name, body = "fc1", {"type": "linear", "out_features": shape[0]}
    else:
        conv = "conv1d" if len(shape) == 2 else "conv2d"
        name = "conv1"
        body = {
            "type": conv,
            "out_channels": shape[0],
            "kernel_size": 3,
            "padding": "same",
        }
    return (
        f"Add one that keeps its input's shape {list(shape)}: "
        f"{command(f'+{key}.{name}={flow(body)}')}"
    )


def _parse_body(
    entry: LayerEntry, input_shape: tuple[int, ...], init: Any, activation: Any
) -> tuple[LayerSpec, ...]:
    """The layers of a nested layer, resolved in order from its input shape."""
    children = _nested_entries(entry, input_shape=input_shape)
    _apply_global_choices(children, init, activation)
    resolved = []
    shape = input_shape
    for child in children:
        layer = parse_layer(child, shape, init=init, activation=activation)
        resolved.append(layer)
        shape = layer.output_shape
    _check_activation_names(resolved, f"{entry.path}.layers")
    return tuple(resolved)


def _check_residual_shapes(
    entry: LayerEntry,
    options: Mapping[str, Any],
    input_shape: tuple[int, ...],
    body_shape: tuple[int, ...],
) -> None:
    """x + body(x) needs both of one shape, unless the block projects x."""
    if body_shape == input_shape or options.get("projection"):
        return
    linear = len(input_shape) == 1 or layout_of(input_shape) == SEQUENCE
    kind = "linear" if linear else "1x1 convolution"
    # A block written without the option (a model file's own) needs + to add it.
    add = "" if "projection" in entry.fields else "+"
    raise ConfigError(
        entry.path,
        f"residual block {entry.name!r} adds its input, of shape {list(input_shape)}, "
        f"to its layers' output, of shape {list(body_shape)}: they differ.",
        f"Set {add}{entry.path}.projection=true (a {kind} projection of the input), "
        "or make its last layer give the input's shape.",
    )


def _layer_type(entry: LayerEntry) -> LayerType:
    """The layer's registered type, after checking its name and that it has one."""
    if not entry.name.isidentifier() or not entry.name.isascii():
        raise _layer_name_error(entry.name, entry.path)
    if "type" not in entry.fields:
        raise ConfigError(
            f"{entry.path}.type",
            "the layer has no type.",
            f"Set it, e.g. +layer@{entry.path}=linear "
            f"(valid: {', '.join(layers.names())}).",
        )
    layer_type: LayerType = lookup(layers, entry.fields["type"], entry.key("type"))
    return layer_type


def _options(entry: LayerEntry, layer_type: LayerType) -> dict[str, Any]:
    """The layer type's options, validated, with their defaults filled in."""
    given = {
        k: v
        for k, v in entry.fields.items()
        if k not in LAYER_FIELDS and not (layer_type.nested and k == "layers")
    }
    for option in given:
        if option not in layer_type.params:
            raise UnknownNameError(
                entry.key(option),
                "layer key",
                option,
                [
                    *LAYER_FIELDS,
                    *(["layers"] if layer_type.nested else []),
                    *layer_type.params,
                ],
                where=f" for layer type {entry.fields['type']!r}",
            )
    options = {}
    for option, param in layer_type.params.items():
        key = entry.key(option)
        if option in given:
            options[option] = param.validate(given[option], key)
        elif param.required:
            raise ConfigError(
                key,
                f"layer type {entry.fields['type']!r} needs {option!r} "
                f"({param.allowed()}).",
                f"Set {key}=<value>.",
            )
        else:
            options[option] = param.default
    return options


def _parameters(
    layer: _Layer, shape: LayerShape, chosen: Mapping[str, InitSpec]
) -> tuple[ParameterSpec, ...]:
    """Each parameter of the layer with the init that fills it.

    ``weight_init`` and ``bias_init`` choose the inits of ``weight`` and ``bias``;
    every other parameter (those of child modules too) takes its layer type's
    default.
    """
    entry = layer.entry
    parameters = []
    field_of = layer.layer_type.init_field
    if field_of is None:
        # A residual block's weight_init and bias_init set its projection's.
        prefix = f"{PROJECTION}." if layer.layer_type.nested else ""

        def field_of(parameter: str) -> str | None:
            return _PARAMETER_FIELDS.get(parameter.removeprefix(prefix))

    fields = set()
    for parameter in shape.parameters:
        field = field_of(parameter)
        fields.add(field)
        choice = chosen[field] if field else InitSpec("default", {})
        key = entry.key(field) if field else entry.path
        parameters.append(
            _resolve_parameter(layer, shape, parameter, choice=choice, key=key)
        )
    for parameter, field in _PARAMETER_FIELDS.items():
        if entry.key(field) == "init":
            continue  # the top-level group: for the layers that have a weight
        if field not in fields and chosen[field].name != "default":
            key = entry.key(field)
            raise ConfigError(
                key,
                f"layer {entry.name!r} ({layer.type_name}) has no {parameter}, so "
                f"{chosen[field].name!r} cannot apply.",
                f"Remove it or set {key}=default.",
            )
    return tuple(parameters)


def _resolve_parameter(
    layer: _Layer,
    layer_shape: LayerShape,
    parameter: str,
    *,
    choice: InitSpec,
    key: str,
) -> ParameterSpec:
    """The parameter with its init resolved (``default``: the layer type's own)."""
    shape = tuple(layer_shape.parameters[parameter])
    from_default = choice.name == "default"
    if from_default:
        name, params = _default_init(layer, layer_shape, parameter, key)
        choice = parse_init({"name": name, **params}, key, _LINEAR)
    scheme = inits.get(choice.name)
    if len(shape) < scheme.min_dim:
        raise ConfigError(
            key,
            f"init {choice.name!r} needs a tensor of at least {scheme.min_dim} "
            f"dimensions; {layer.entry.name}.{parameter} has shape {list(shape)}.",
            "Use zeros, constant, uniform, normal or default for it.",
        )
    problem = None if scheme.fits is None else scheme.fits(shape)
    if scheme.layer_types and layer.type_name not in scheme.layer_types:
        types = " or ".join(scheme.layer_types)
        problem = f"fills the parameters of {types} layers, not of a {layer.type_name}"
    if problem:
        raise ConfigError(
            key,
            f"init {choice.name!r} {problem}; {layer.entry.name}.{parameter} has "
            f"shape {list(shape)}.",
            "Use zeros, constant, uniform, normal or default for it.",
        )
    return ParameterSpec(parameter, shape, choice, from_default, key)


def _default_init(
    layer: _Layer, shape: LayerShape, parameter: str, key: str
) -> tuple[str, Any]:
    """The layer type's own init of ``parameter``: a scheme name and parameters."""
    default_init = layer.layer_type.default_init
    try:
        if default_init is None:
            raise LookupError(parameter)
        return default_init(parameter, shape, layer.options)
    except LookupError:
        raise ConfigError(
            key,
            f"layer type {layer.type_name!r} declares no default init for "
            f"{parameter!r}.",
            "Name an init for it instead of 'default'.",
        ) from None


def _layer_shape(layer: _Layer) -> LayerShape:
    """The layer's output and parameter shapes, from its type's rule."""
    rule = layer.layer_type.shape
    if rule is None:
        return _shape_on_meta(layer)
    try:
        return rule(layer.input_shape, layer.options)
    except AnnFactoryError:
        raise  # a rule that reports with a config path of its own
    except ValueError as error:
        hint = "Change its options, the layers before it, or the model's input shape."
        if isinstance(error, InputRankError) and layer.input_fix is not None:
            hint = layer.input_fix(error.dims)
        raise ConfigError(
            layer.entry.path,
            f"layer type {layer.type_name!r} cannot take the input shape "
            f"{list(layer.input_shape)}: {error}.",
            hint,
        ) from error


def _shape_on_meta(layer: _Layer) -> LayerShape:
    """The fallback for a layer type without a shape rule (a plugin class).

    Its parameters are learnt by building it on the meta device; its output keeps
    the input's shape but for the last dimension, which ``out_features`` sets if the
    type has that option (the contract of classes that take ``in_features`` first).
    """
    try:
        module = build_on_meta(layer.layer_type, layer.input_shape, layer.options)
    except Exception as error:
        raise ConfigError(
            layer.entry.path,
            f"layer type {layer.type_name!r} cannot be built: {error}",
        ) from error
    *batch, last = layer.input_shape
    output = (*batch, int(layer.options.get("out_features", last)))
    parameters = {name: tuple(p.shape) for name, p in module.named_parameters()}
    return LayerShape(output, parameters)


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
