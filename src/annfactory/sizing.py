"""How a data set sizes a model: both ends of a network trained on it.

With a data set (``task=train data=<name>``), the data decides the network's input
and output sizes:

- An ``mlp``'s ``in_features`` and ``out_features``: null (the default) is the
  data's features and its classes (1 for a regression target). A size set on
  purpose must agree; it is refused otherwise, naming both.
- A ``sequential`` model (``model=demo``, ``model=resmlp``, ``model=cnn``, a model
  file of one's own) keeps its layers and takes the data's sizes at both ends:

  - its input: ``in_features`` / ``input_shape`` null or absent is the data's rows,
    ``[features]``, or the data's image shape (``[1, 8, 8]`` for digits) where the
    network's first layer takes no vectors. A vector input (``in_features: N``)
    becomes the data's ``[features]``, whatever N. An image input must be the
    data's image shape, since its layers were made for that size: refused
    otherwise.
  - its last layer's ``out_features`` (a linear output layer): the data's classes,
    or 1 for regression (one unit on two classes stays: binary cross-entropy).
  - each size that differs from the model's is named in one note.
- Another model type: its null ``in_features``, ``out_features`` and
  ``input_shape`` take the data's.

Where the network still does not fit the data, the error names both and a command
that fixes it (:mod:`annfactory.fixes`). No torch here; the data's sizes are read
here (:func:`data_shape_of`, a CSV file's header and target column), between
composing and building, so the spec's types and the layers' parser do no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from annfactory.errors import ConfigError
from annfactory.fixes import command, flow
from annfactory.layer_spec import model_input_layout, parse_network
from annfactory.layers import layers
from annfactory.layouts import SEQUENCE, layout_of
from annfactory.spec_types import LayerSpec, NetworkSpec

__all__ = ["DataShape", "check_data_sizes", "data_shape_of", "size_by_data"]


@dataclass(frozen=True)
class DataShape:
    """What a network trained on a data set must take and give.

    Attributes:
        name: The data set (``data=<name>``).
        features: Features of a row.
        outputs: Classes, or 1 for a regression target.
        kind: ``classification`` or ``regression``.
        image_shape: One row as an image (``(1, 8, 8)``), None for vectors only.
        image_sets: The data sets whose rows are images, for suggestions.
        sequence_shape: One row as a sequence, ``(time, dimensions)`` (a UCR set),
            which a model that takes sequences gets its rows in; None: no sequences.
    """

    name: str
    features: int
    outputs: int
    kind: str
    image_shape: tuple[int, ...] | None = None
    image_sets: tuple[str, ...] = ()
    sequence_shape: tuple[int, ...] | None = None

    @property
    def targets(self) -> str:
        """``3 classes`` or ``1 target``."""
        if self.kind == "regression":
            return "1 target"
        return f"{self.outputs} classes"

    def fits(self, outputs: int) -> bool:
        """A network with ``outputs`` units fits the data's targets: one per class
        (or one unit for two classes), or one value for regression."""
        binary = self.kind == "classification" and self.outputs == 2 and outputs == 1
        return outputs == self.outputs or binary


def data_shape_of(data: Any, seed: int) -> DataShape:
    """What a network trained on the run's data set must take and give: the data
    set's sizes (a CSV file's are read from the file)."""
    from annfactory.data import (
        data_image_shape,
        data_sample_shape,
        data_sizes,
        datasets,
    )

    features, outputs, kind = data_sizes(data, seed)
    images = tuple(
        name for name, entry in datasets.items() if entry.image_shape is not None
    )
    sequence = data_sample_shape(data, seed)
    image = data_image_shape(data)
    return DataShape(data.name, features, outputs, kind, image, images, sequence)


def size_by_data(
    model: Any, data: DataShape, init: Any = None, activation: Any = None
) -> tuple[Any, str | None]:
    """The model node sized for the data, and a note naming what changed.

    Args:
        model: A model node (plain data), before :func:`parse_network`.
        data: The data set's sizes.
        init: The top-level ``init`` choice (to try the network's input shapes).
        activation: The top-level ``activation`` choice, likewise.

    Returns:
        The node with the data's sizes, and a one-line note (None if the model's
        own sizes were kept): ``sized for data=iris (4 features, 3 classes):
        model.in_features 3 -> 4, model.layers.out.out_features 2 -> 3.``
    """
    if not isinstance(model, Mapping):
        return model, None
    sized = dict(model)
    if sized.get("type", "sequential") != "sequential":
        _fill_nulls(sized, data)
        return sized, None
    changes: list[str] = []
    _size_input(sized, data, changes, init, activation)
    _size_output(sized, data, changes)
    if not changes:
        return sized, None
    what = f"{data.features} features, {data.targets}"
    return sized, f"sized for data={data.name} ({what}): {', '.join(changes)}."


def _fill_nulls(model: dict[str, Any], data: DataShape) -> None:
    """A model type's null sizes (an mlp's, by default) take the data's."""
    for name, size in (("in_features", data.features), ("out_features", data.outputs)):
        if name in model and model[name] is None:
            model[name] = size
    if "input_shape" in model and model["input_shape"] is None:
        shape = data.image_shape or data.sequence_shape or (data.features,)
        model["input_shape"] = list(shape)


def _size(value: Any) -> TypeGuard[int]:
    """A size as a model declares it: an integer >= 1 (anything else is refused
    by the validators, with its key)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _size_input(
    model: dict[str, Any],
    data: DataShape,
    changes: list[str],
    init: Any,
    activation: Any,
) -> None:
    """A sequential model's input: a vector takes the data's features; null or
    absent takes the data's rows; an image shape is left to :func:`check_data_sizes`."""
    shape = model.get("input_shape")
    if shape is not None:
        vector = isinstance(shape, list | tuple) and len(shape) == 1
        if vector and _size(shape[0]) and shape[0] != data.features:
            model["input_shape"] = [data.features]
            changes.append(f"model.input_shape [{shape[0]}] -> [{data.features}]")
        sequence = data.sequence_shape
        two = isinstance(shape, list | tuple) and len(shape) == 2
        if two and sequence is not None:
            _check_sequence_layout(model, data)
        if two and sequence is not None and list(shape) != list(sequence):
            # A sequence's length and features are the data's (a recurrent or
            # attention layer takes any length).
            model["input_shape"] = list(sequence)
            changes.append(
                f"model.input_shape {_compact(list(shape))} -> "
                f"{_compact(list(sequence))}"
            )
        if two and sequence is not None:
            _size_positions(model, sequence[0], changes)
        return
    size = model.get("in_features")
    if size is not None:
        if _size(size) and size != data.features:
            model["in_features"] = data.features
            changes.append(f"model.in_features {size} -> {data.features}")
        return
    model.pop("in_features", None)
    model["input_shape"] = _rows(model, data, init, activation)


def _size_positions(model: dict[str, Any], steps: int, changes: list[str]) -> None:
    """Sinusoidal positions (no parameters) reach the data's length: a
    ``positional_encoding`` layer's ``max_length`` shorter than it grows to it. A
    learned one keeps its table (its parameters), and is refused if too short."""
    layers = model.get("layers")
    if not isinstance(layers, Mapping):
        return
    model["layers"] = dict(layers)
    for name, layer in layers.items():
        if not isinstance(layer, Mapping) or layer.get("type") != "positional_encoding":
            continue
        length = layer.get("max_length")
        sinusoidal = layer.get("kind") == "sinusoidal"
        if sinusoidal and _size(length) and length < steps:
            model["layers"][name] = {**layer, "max_length": steps}
            changes.append(f"model.layers.{name}.max_length {length} -> {steps}")


def _rows(
    model: Mapping[str, Any], data: DataShape, init: Any, activation: Any
) -> list[int]:
    """The data's rows as the network takes them: vectors, or images where its
    first layer takes no vectors."""
    vector = [data.features]
    shaped = data.image_shape or data.sequence_shape
    if shaped is None:
        return vector
    try:
        parse_network({**model, "input_shape": vector}, "model", init, activation)
    except ConfigError:
        if data.image_shape is None:
            _check_sequence_layout(model, data)
        return list(shaped)
    return vector


def _size_output(model: dict[str, Any], data: DataShape, changes: list[str]) -> None:
    """A sequential model's last layer gives the data's outputs, where it has an
    ``out_features`` (null: the data's)."""
    layers = model.get("layers")
    if not isinstance(layers, Mapping) or not layers:
        return
    name, last = list(layers.items())[-1]
    if not isinstance(last, Mapping) or "out_features" not in last:
        return
    size = last["out_features"]
    if size is not None and not (_size(size) and not data.fits(size)):
        return
    if size is not None:
        changes.append(f"model.layers.{name}.out_features {size} -> {data.outputs}")
    model["layers"] = {**layers, name: {**last, "out_features": data.outputs}}


# ------------------------------------------------------------------------------------
# The check, after the network is resolved
# ------------------------------------------------------------------------------------


def check_data_sizes(network: NetworkSpec, data: DataShape, model: Any) -> None:
    """The network takes the data's rows (as vectors, or as images of the data's
    image shape) and gives one output per class (or one unit for two classes, or
    one value for regression).

    Args:
        network: The resolved network.
        data: The data set's sizes.
        model: The model node it was resolved from, sized by :func:`size_by_data`.

    Raises:
        ConfigError: Names both sizes and a command that fixes it.
    """
    if network.input_shape not in (
        (data.features,),
        data.image_shape,
        data.sequence_shape,
    ):
        raise _input_error(network.input_shape, data)
    if (
        data.sequence_shape is not None
        and network.input_shape == data.sequence_shape
        and layout_of(network.input_shape) != SEQUENCE
    ):
        raise _channels_error("first layer", data)
    out = network.output_shape
    node = model if isinstance(model, Mapping) else {}
    model_type = node.get("type", "sequential")
    if len(out) == 1 and data.fits(out[0]):
        _check_regression_output(network, data, model_type)
        return
    if model_type != "sequential":
        gives = f"{out[0]} outputs" if len(out) == 1 else f"output of shape {list(out)}"
        hint = (
            f"Set {command(f'model.out_features={data.outputs}')} (or null: the "
            "data's)."
            if "out_features" in node
            else f"Change the {model_type} model's settings to give {data.outputs}."
        )
        raise ConfigError(
            "model.out_features",
            f"the network gives {gives} per row (layer {network.layers[-1].name}), "
            f"and data={data.name} has {data.targets}.",
            hint,
        )
    raise _output_error(network, data, node)


def _check_regression_output(
    network: NetworkSpec, data: DataShape, model_type: str
) -> None:
    """A regression network ends without a softmax (a distribution over classes):
    the message names the key of its output activation in this model type."""
    last = network.layers[-1]
    name = last.activation.name
    if data.kind != "regression" or name not in ("softmax", "log_softmax"):
        return
    keys = {"mlp": "model.output_activation"}
    keys["sequential"] = f"model.layers.{last.name}.activation"
    if model_type not in keys:
        return  # the train task refuses it, without a key of this model type
    key = keys[model_type]
    raise ConfigError(
        key,
        f"a regression network cannot end with {name}: its output is a "
        f"distribution over classes, and data={data.name} has 1 target.",
        f"Use {command(f'{key}=identity')}.",
    )


def _check_sequence_layout(model: Mapping[str, Any], data: DataShape) -> None:
    """A model whose 2-D input is channels first cannot take the data's sequences
    (its first conv1d would read time as channels): refused before its layers are
    checked against the shape, with the transpose that fixes it."""
    try:
        layout, decider = model_input_layout(model, 2)
    except ConfigError:
        return  # the model's own error comes when it is parsed
    if layout != SEQUENCE and decider is not None:
        raise _channels_error(decider, data)


def _channels_error(what: str, data: DataShape) -> ConfigError:
    """The data's rows are sequences and the network takes channels first."""
    return ConfigError(
        "model.input_shape",
        f"the network's {what} takes [channels, length], and data={data.name} has "
        f"sequences [time, dimensions] of shape {list(data.sequence_shape or ())}.",
        "Put a transpose layer before it (+layer@model.layers.<name>=transpose, "
        "first in the model file), which makes [dimensions, time] of them.",
    )


def _input_error(shape: tuple[int, ...], data: DataShape) -> ConfigError:
    if len(shape) == 1:
        return ConfigError(
            "model.in_features",
            f"the network takes {shape[0]} inputs, and data={data.name} has "
            f"{data.features} features.",
            f"Set {command(f'model.in_features={data.features}')} (or null: the "
            "data's).",
        )
    if data.sequence_shape is not None:
        steps = list(data.sequence_shape)
        return ConfigError(
            "model.input_shape",
            f"the network takes {_samples(shape)} of shape {list(shape)}, and "
            f"data={data.name} has sequences [time, dimensions] of shape {steps}.",
            f"Use {command(f'model.input_shape={_compact(steps)}')} (or null: the "
            "data's), or model=mlp for the rows as vectors.",
        )
    if data.image_shape is not None:
        image = list(data.image_shape)
        return ConfigError(
            "model.input_shape",
            f"the network takes {_samples(shape)} of shape {list(shape)}, and "
            f"data={data.name} has images of shape {image}.",
            f"Use {command(f'model.input_shape={_compact(image)}')} if its layers "
            "fit that size (or null: the data's).",
        )
    problem = (
        f"the network takes {_samples(shape)} of shape {list(shape)}, and "
        f"data={data.name} has rows of {data.features} features, no images."
    )
    if len(shape) == 3 and data.image_sets:
        images = data.image_sets[0]
        return ConfigError(
            "model.input_shape",
            problem,
            f"A network for images needs data with images: use data={images}, or "
            "model=mlp for these rows.",
        )
    sequence = f"model.input_shape={_compact([1, data.features])}"
    return ConfigError(
        "model.input_shape",
        problem,
        f"Use model=mlp for these rows, or {command(sequence)} (one channel of "
        f"{data.features} values) if its layers take that.",
    )


def _samples(shape: tuple[int, ...]) -> str:
    """What samples of ``shape`` are: images ``[C, H, W]``, sequences ``[C, L]``."""
    return {3: "images", 2: "sequences"}.get(len(shape), "samples")


def _output_error(
    network: NetworkSpec, data: DataShape, model: Mapping[str, Any]
) -> ConfigError:
    """A sequential network whose output does not fit the data and that
    :func:`size_by_data` could not size: the command that ends it right."""
    last = network.layers[-1]
    out = network.output_shape
    nodes = model.get("layers")
    taken = set(nodes) if isinstance(nodes, Mapping) else set()
    key = f"model.layers.{last.name}"
    head = {"type": "linear", "out_features": data.outputs}
    flatten = f"+model.layers.{_free('flatten', taken)}={{type: flatten}}"
    if len(out) == 1:
        name = _free("head", taken)
        return ConfigError(
            key,
            f"the network gives {out[0]} outputs per row (layer {last.name}, "
            f"{last.type}), and data={data.name} has {data.targets}.",
            "End it with a linear layer: "
            f"{command(f'+model.layers.{name}={flow(head)}')}",
        )
    if "out_features" in last.options:
        node = nodes.get(last.name) if isinstance(nodes, Mapping) else None
        fields = _own_fields(node if isinstance(node, Mapping) else {}, last)
        return ConfigError(
            key,
            f"layer {last.name} ({last.type}) acts on the last dimension of its "
            f"input, of shape {list(last.input_shape)}, so the network gives "
            f"{list(out)} per row; data={data.name} has {data.targets}.",
            "Flatten its input first (a flatten layer before it): "
            + command(f"~{key}", flatten, f"+{key}={flow(fields)}"),
        )
    name = _free("head", taken)
    return ConfigError(
        key,
        f"the network gives output of shape {list(out)} per row (layer "
        f"{last.name}), and data={data.name} has {data.targets}.",
        "End it with a flatten and a linear layer: "
        + command(flatten, f"+model.layers.{name}={flow(head)}"),
    )


def _own_fields(node: Mapping[str, Any], layer: LayerSpec) -> dict[str, Any]:
    """A layer's settings to write it again: its type, its out_features, and each
    field that differs from its default."""
    params = layers.get(layer.type).params
    fields: dict[str, Any] = {
        "type": layer.type,
        "out_features": layer.options["out_features"],
    }
    for name, value in node.items():
        if name in ("type", "out_features") or value is None:
            continue
        if name in params and value == params[name].default:
            continue
        if name in ("activation", "weight_init", "bias_init") and _plain_default(value):
            continue
        fields[name] = value
    return fields


def _plain_default(choice: Any) -> bool:
    """An activation or init choice that is the default: identity, or default."""
    if isinstance(choice, Mapping):
        if set(choice) != {"name"}:
            return False
        choice = choice["name"]
    return choice in ("identity", "default")


def _free(base: str, taken: set[Any]) -> str:
    """``base``, or ``base2``, ``base3``, ... : a layer name not taken."""
    name, index = base, 2
    while name in taken:
        name, index = f"{base}{index}", index + 1
    return name


def _compact(shape: list[int]) -> str:
    """``[1,8,8]``: a list as an override's value, without spaces."""
    return "[" + ",".join(map(str, shape)) + "]"
