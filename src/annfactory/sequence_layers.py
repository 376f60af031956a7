"""Sequence layer types: the shape rules, builders, options and default inits of
``transpose``, ``embedding``, ``lstm``, ``gru``, ``transformer_encoder``,
``positional_encoding`` and ``sequence_pool``, which :mod:`annfactory.layers`
registers.

A sequence is ``[time, features]`` per sample (:data:`SEQUENCE`), as torch's
``batch_first=True`` takes it; an embedding takes ``[time]`` integer ids (:data:`IDS`).
The shape rules are pure (no torch); torch is imported only when a module is built
(:mod:`annfactory.sequence_modules`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from annfactory.layer_shapes import (
    CHANNELS,
    IDS,
    SEQUENCE,
    LayerShape,
    Shape,
    layout_of,
    layout_text,
    with_layout,
)
from annfactory.params import AUTO, REQUIRED, Param

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "SequenceLayoutError",
    "attention_values",
    "embedding_params",
    "embedding_shape",
    "positional_params",
    "positional_shape",
    "recurrent_default",
    "recurrent_field",
    "recurrent_params",
    "recurrent_shape",
    "sequence_pool_shape",
    "transformer_default",
    "transformer_field",
    "transformer_params",
    "transformer_shape",
    "transpose_shape",
    "working_values",
]

#: The gates of each recurrent cell, in torch's order (their rows in weight_ih).
GATES: Final = {"lstm": 4, "gru": 3}


class SequenceLayoutError(ValueError):
    """A layer's input has another layout than it takes (an lstm on a vector)."""


def sequence_input(input_shape: Shape) -> tuple[int, int]:
    """``(time, features)`` of a sequence input.

    Raises:
        SequenceLayoutError: The input is not a sequence; says what it is, and for a
            channel map, that a transpose makes it one.
    """
    if len(input_shape) == 2 and layout_of(input_shape) == SEQUENCE:
        return input_shape[0], input_shape[1]
    text = f"it takes a sequence [time, features], not {layout_text(input_shape)}"
    if len(input_shape) == 2 and layout_of(input_shape) == CHANNELS:
        text += " (a transpose layer before it makes one)"
    raise SequenceLayoutError(text)


# ------------------------------------------------------------------------------------
# transpose
# ------------------------------------------------------------------------------------


def transpose_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # Swaps the two last dimensions: a sequence [T, F] becomes a channel map [F, T]
    # and back; an image [C, H, W] stays a channel map [C, W, H].
    if len(input_shape) < 2:
        raise SequenceLayoutError(
            f"it swaps two dimensions, and {layout_text(input_shape)} has one"
        )
    *rest, first, second = input_shape
    layout = layout_of(input_shape)
    if len(input_shape) == 2:
        layout = CHANNELS if layout == SEQUENCE else SEQUENCE
    return LayerShape(with_layout((*rest, second, first), layout))


def build_transpose(input_shape: Shape) -> nn.Module:
    from annfactory.sequence_modules import Transpose

    return Transpose()


# ------------------------------------------------------------------------------------
# embedding
# ------------------------------------------------------------------------------------


def embedding_params() -> dict[str, Param]:
    return {
        "num_embeddings": Param(int, REQUIRED, "size of the vocabulary (ids are "
                                "0 to num_embeddings - 1)", low=1),
        "embedding_dim": Param(int, REQUIRED, "size of each id's vector", low=1),
        "padding_idx": Param(int, AUTO, "an id whose vector is zero and gets no "
                             "gradient; null: none"),
    }  # fmt: skip


def embedding_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # [T] integer ids -> [T, embedding_dim]; weight [num_embeddings, embedding_dim].
    if layout_of(input_shape) != IDS:
        raise SequenceLayoutError(
            f"it takes integer ids [time] (the model's input), not "
            f"{layout_text(input_shape)}"
        )
    count, width = options["num_embeddings"], options["embedding_dim"]
    padding = options["padding_idx"]
    if padding is not None and not -count <= padding < count:
        raise ValueError(
            f"padding_idx {padding} is not an id of num_embeddings {count} "
            f"(allowed: {-count} to {count - 1})"
        )
    return LayerShape(
        with_layout((input_shape[0], width), SEQUENCE), {"weight": (count, width)}
    )


def build_embedding(
    input_shape: Shape, *, num_embeddings: int, embedding_dim: int, padding_idx: Any
) -> nn.Module:
    from annfactory.sequence_modules import Embedding

    return Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)


# ------------------------------------------------------------------------------------
# lstm and gru
# ------------------------------------------------------------------------------------

#: What a recurrent layer gives: the last step, the mean over time, or every step.
OUTPUTS: Final = ("last", "mean", "sequence")


def recurrent_params() -> dict[str, Param]:
    return {
        "hidden_size": Param(int, REQUIRED, "features of the hidden state", low=1),
        "num_layers": Param(int, 1, "stacked recurrent layers", low=1),
        "bidirectional": Param(bool, False, "also run backwards over time (doubles "
                               "the output's features)"),
        "dropout": Param(float, 0.0, "dropout between stacked layers (needs "
                         "num_layers >= 2)", low=0, high=1, high_open=True),
        "bias": Param(bool, True, "learn the biases bias_ih and bias_hh"),
        "output": Param(str, "last", "last (the final step; bidirectional: with the "
                        "backward direction's first), mean (over time) or sequence "
                        "(every step)", choices=OUTPUTS),
    }  # fmt: skip


def recurrent_shape(kind: str) -> Any:
    """The shape rule of ``lstm`` or ``gru``: torch's parameters per layer and
    direction (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``,
    then ``..._reverse``), and ``[H * directions]``, or ``[T, H * directions]`` for
    ``output: sequence``."""
    gates = GATES[kind]

    def shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
        time, features = sequence_input(input_shape)
        hidden, layers = options["hidden_size"], options["num_layers"]
        if options["dropout"] and layers == 1:
            raise ValueError(
                f"dropout {options['dropout']:g} acts between stacked layers and "
                "num_layers is 1 (set num_layers >= 2, or add a dropout layer after it)"
            )
        directions = 2 if options["bidirectional"] else 1
        parameters: dict[str, Shape] = {}
        for layer in range(layers):
            inputs = features if layer == 0 else hidden * directions
            for suffix in ("", "_reverse")[:directions]:
                parameters[f"weight_ih_l{layer}{suffix}"] = (gates * hidden, inputs)
                parameters[f"weight_hh_l{layer}{suffix}"] = (gates * hidden, hidden)
                if options["bias"]:
                    parameters[f"bias_ih_l{layer}{suffix}"] = (gates * hidden,)
                    parameters[f"bias_hh_l{layer}{suffix}"] = (gates * hidden,)
        width = hidden * directions
        if options["output"] == "sequence":
            return LayerShape(with_layout((time, width), SEQUENCE), parameters)
        return LayerShape((width,), parameters)

    return shape


def build_recurrent(kind: str) -> Any:
    """``build(input_shape, **options)`` of annfactory's LSTM or GRU module."""

    def build(input_shape: Shape, **options: Any) -> nn.Module:
        from annfactory import sequence_modules

        cls = sequence_modules.LSTM if kind == "lstm" else sequence_modules.GRU
        module: nn.Module = cls(input_shape[-1], **options)
        return module

    build.__name__ = build.__qualname__ = f"build_{kind}"
    return build


def recurrent_field(parameter: str) -> str | None:
    """The field that sets a recurrent parameter's init: ``weight_init`` for the
    weights (input and recurrent), ``bias_init`` for the biases."""
    return "weight_init" if parameter.startswith("weight_") else "bias_init"


def recurrent_default(kind: str) -> Any:
    """The default inits of ``lstm`` and ``gru``: ``weight_ih`` xavier_uniform,
    ``weight_hh`` orthogonal (Saxe et al. 2013), biases zero; for an LSTM,
    ``bias_ih``'s forget gate 1 (Jozefowicz et al. 2015, *An Empirical Exploration of
    Recurrent Network Architectures*; Keras's ``unit_forget_bias``)."""

    def default(
        parameter: str, shape: LayerShape, options: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if parameter.startswith("weight_ih"):
            return "xavier_uniform", {"gain": 1.0}
        if parameter.startswith("weight_hh"):
            return "orthogonal", {"gain": 1.0}
        if kind == "lstm" and parameter.startswith("bias_ih"):
            return "forget_gate", {"val": 1.0}
        return "zeros", {}

    return default


# ------------------------------------------------------------------------------------
# transformer_encoder
# ------------------------------------------------------------------------------------


def transformer_params() -> dict[str, Param]:
    return {
        "nhead": Param(int, REQUIRED, "attention heads (they divide the input's "
                       "features, d_model)", low=1),
        "dim_feedforward": Param(int, 2048, "width of each layer's feed-forward "
                                 "network", low=1),
        "num_layers": Param(int, 1, "stacked encoder layers", low=1),
        "dropout": Param(float, 0.1, "dropout in attention and feed-forward", low=0,
                         high=1, high_open=True),
        "feedforward_activation": Param(str, "relu", "activation of the feed-forward "
                                        "network (torch's activation)",
                                        choices=("relu", "gelu")),
        "norm_first": Param(bool, False, "layer norm before attention and "
                            "feed-forward (pre-LN) instead of after"),
        "layer_norm_eps": Param(float, 1e-5, "added to the variance in the layer "
                                "norms", low=0, low_open=True),
        "bias": Param(bool, True, "learn the biases of the linear and norm layers"),
    }  # fmt: skip


#: One encoder layer's parameters, in the order torch registers them, by the sizes
#: they take: d (d_model) and f (dim_feedforward).
_ENCODER_PARAMETERS: Final = (
    ("self_attn.in_proj_weight", ("3d", "d")),
    ("self_attn.in_proj_bias", ("3d",)),
    ("self_attn.out_proj.weight", ("d", "d")),
    ("self_attn.out_proj.bias", ("d",)),
    ("linear1.weight", ("f", "d")),
    ("linear1.bias", ("f",)),
    ("linear2.weight", ("d", "f")),
    ("linear2.bias", ("d",)),
    ("norm1.weight", ("d",)),
    ("norm1.bias", ("d",)),
    ("norm2.weight", ("d",)),
    ("norm2.bias", ("d",)),
)


def transformer_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # [T, d_model] -> [T, d_model]; each layer's attention, feed-forward and norms.
    time, d_model = sequence_input(input_shape)
    heads = options["nhead"]
    if d_model % heads:
        raise ValueError(
            f"nhead {heads} does not divide d_model {d_model} (the input's features); "
            f"allowed: {', '.join(str(n) for n in _divisors(d_model))}"
        )
    sizes = {"d": d_model, "3d": 3 * d_model, "f": options["dim_feedforward"]}
    parameters: dict[str, Shape] = {}
    for layer in range(options["num_layers"]):
        for name, dims in _ENCODER_PARAMETERS:
            if not options["bias"] and name.endswith("bias"):
                continue
            parameters[f"layers.{layer}.{name}"] = tuple(sizes[d] for d in dims)
    return LayerShape(with_layout((time, d_model), SEQUENCE), parameters)


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0][:8]


def build_transformer(
    input_shape: Shape,
    *,
    nhead: int,
    dim_feedforward: int,
    num_layers: int,
    dropout: float,
    feedforward_activation: str,
    norm_first: bool,
    layer_norm_eps: float,
    bias: bool,
) -> nn.Module:
    from torch import nn

    from annfactory.sequence_modules import TransformerEncoder

    layers = [
        nn.TransformerEncoderLayer(
            input_shape[-1],
            nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=feedforward_activation,
            layer_norm_eps=layer_norm_eps,
            batch_first=True,
            norm_first=norm_first,
            bias=bias,
        )
        for _ in range(num_layers)
    ]
    return TransformerEncoder(layers)


def transformer_field(parameter: str) -> str | None:
    """The field that sets an encoder parameter's init: ``weight_init`` for the
    attention's and feed-forward's matrices, ``bias_init`` for their biases; the layer
    norms keep theirs (weight 1, bias 0)."""
    if ".norm" in parameter:
        return None
    return "bias_init" if parameter.endswith("bias") else "weight_init"


def transformer_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    # torch's own: MultiheadAttention._reset_parameters (in_proj xavier_uniform, its
    # bias and out_proj's bias 0), nn.Linear's (out_proj.weight, linear1, linear2),
    # nn.LayerNorm's (1 and 0).
    name = parameter.split(".", 2)[2]
    if name == "self_attn.in_proj_weight":
        return "xavier_uniform", {"gain": 1.0}
    if name in ("self_attn.in_proj_bias", "self_attn.out_proj.bias"):
        return "zeros", {}
    if name.startswith("norm"):
        return ("ones", {}) if name.endswith("weight") else ("zeros", {})
    if name.endswith("weight"):
        return "kaiming_uniform", {
            "a": math.sqrt(5),
            "mode": "fan_in",
            "nonlinearity": "leaky_relu",
        }
    weight = shape.parameters[parameter.removesuffix("bias") + "weight"]
    bound = 1.0 / math.sqrt(weight[1])
    return "uniform", {"a": -bound, "b": bound}


# ------------------------------------------------------------------------------------
# positional_encoding and sequence_pool
# ------------------------------------------------------------------------------------


def positional_params() -> dict[str, Param]:
    return {
        "kind": Param(str, "sinusoidal", "sinusoidal (fixed, no parameters) or "
                      "learned (a vector per position)",
                      choices=("sinusoidal", "learned")),
        "max_length": Param(int, 1024, "the longest sequence it takes", low=1),
    }  # fmt: skip


def positional_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # Adds a vector per position: [T, F] -> [T, F]; learned: weight [max_length, F].
    time, features = sequence_input(input_shape)
    longest = options["max_length"]
    if time > longest:
        raise ValueError(
            f"max_length {longest} is shorter than the sequence ({time} steps); "
            f"set max_length >= {time}"
        )
    parameters: dict[str, Shape] = {}
    if options["kind"] == "learned":
        parameters["weight"] = (longest, features)
    return LayerShape(with_layout((time, features), SEQUENCE), parameters)


def build_positional(input_shape: Shape, *, kind: str, max_length: int) -> nn.Module:
    from annfactory.sequence_modules import LearnedPositions, SinusoidalPositions

    cls = LearnedPositions if kind == "learned" else SinusoidalPositions
    return cls(max_length, input_shape[-1])


def positional_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    # Learned positions: N(0, 0.02^2), as BERT and GPT-2 draw theirs.
    return "normal", {"mean": 0.0, "std": 0.02}


def sequence_pool_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # [T, F] -> [F].
    _, features = sequence_input(input_shape)
    return LayerShape((features,))


def build_sequence_pool(input_shape: Shape, *, mode: str) -> nn.Module:
    from annfactory.sequence_modules import SequencePool

    return SequencePool(mode)


def working_values(
    layer_type: str, input_shape: Sequence[int], options: Mapping[str, Any]
) -> int:
    """The values a training forward pass of one sample keeps inside a recurrent or
    attention layer besides its output, for the memory estimate (an upper bound).

    Measured with torch's saved-tensor hooks (tests/test_sequence_layers.py): per
    layer, direction and time step, torch's LSTM keeps 16 to 20 x hidden_size
    values (gates, cell states and oneDNN's workspace; 20 when stacked and
    bidirectional), counted as 24; a GRU about 8, counted as 10. Per encoder
    layer, attention keeps ``nhead`` maps of ``T x T`` weights three times
    (softmax, dropout mask, dropout), and the projections, residual sums, norms
    and the feed-forward's tensors, counted as 16 ``T x d_model`` and 6 ``T x
    dim_feedforward``. Other layer types: 0.
    """
    if layer_type in GATES:
        steps, hidden = input_shape[0], int(options["hidden_size"])
        directions = 2 if options.get("bidirectional") else 1
        per_step = (24 if layer_type == "lstm" else 10) * hidden
        return int(options.get("num_layers", 1)) * directions * steps * per_step
    if layer_type == "transformer_encoder":
        steps, width = input_shape[0], input_shape[-1]
        dense = steps * (16 * width + 6 * int(options["dim_feedforward"]))
        layers = int(options.get("num_layers", 1))
        return layers * dense + attention_values(layer_type, input_shape, options)
    return 0


def attention_values(
    layer_type: str, input_shape: Sequence[int], options: Mapping[str, Any]
) -> int:
    """The attention weights a ``transformer_encoder`` keeps for one sample: three
    times ``nhead x T x T`` per layer (:func:`working_values`); 0 for other types."""
    if layer_type != "transformer_encoder":
        return 0
    maps = 3 * int(options["nhead"]) * int(options.get("num_layers", 1))
    return maps * input_shape[0] ** 2
