"""Layer types: the ``layer`` registry and its built-in entries.

A layer type declares its shapes with one pure function, without torch: from the
shape of its input (one sample, no batch dimension) and its options to its output's
shape and each parameter's shape (:class:`LayerShape`). So a spec is checked and
counted, and every tensor's size known, before anything is allocated. torch is
imported only when a module is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from annfactory import sequence_layers as sq
from annfactory.conv_layers import (
    SPATIAL_NAMES,
    InputRankError,
    adaptive_avg_pool2d_shape,
    build_adaptive_avg_pool2d,
    build_conv,
    build_flatten,
    build_pool,
    conv_params,
    conv_shape,
    flatten_shape,
    pool_params,
    pool_shape,
)
from annfactory.errors import RegistrationError
from annfactory.inits import fan_in_and_fan_out
from annfactory.layer_shapes import (
    CHANNELS,
    IDS,
    SEQUENCE,
    LayerShape,
    Shape,
    ShapeRule,
    SizeParam,
    layout_of,
    layout_text,
)
from annfactory.params import REQUIRED, Param, params_from_arguments
from annfactory.plugins import load_plugins
from annfactory.registry import EntryCoercion, Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "LAYER_FIELDS",
    "DefaultInit",
    "InitChoice",
    "InputRankError",
    "LayerShape",
    "LayerType",
    "ShapeRule",
    "SizeParam",
    "build_on_meta",
    "in_features_first",
    "layers",
]

InitChoice = tuple[str, dict[str, Any]]
"""An init scheme's name and parameters, e.g. ``("uniform", {"a": -0.5, "b": 0.5})``."""

#: The fields of a layer node besides its layer type's options.
LAYER_FIELDS: Final = ("type", "activation", "weight_init", "bias_init")


DefaultInit = Callable[[str, LayerShape, Mapping[str, Any]], InitChoice]
"""``default_init(parameter, shape, options) -> (scheme, params)``: the layer's own
PyTorch init of ``parameter``, given the layer's :class:`LayerShape` (a bias reads its
fans from the weight's shape, as torch does). Raises LookupError if it has none."""


@dataclass(frozen=True, init=False)
class LayerType:
    """A layer type.

    Args:
        build: ``build(input_shape, **options) -> nn.Module``. Called under
            ``torch.device("meta")``; annfactory allocates and initializes the
            parameters afterwards, once each. (A class whose ``__init__`` takes
            ``in_features`` first is wrapped by :func:`in_features_first`.)
        params: The type's options (``out_features``, ``p``, ``eps``, ...).
        shape: ``shape(input_shape, options) -> LayerShape``: the output's and each
            parameter's shape, pure, without torch. None means: learn the parameters
            by building the module on the meta device, and keep the input's shape
            but for its last dimension, which ``out_features`` sets if the type has
            that option (the contract of plugin classes that take ``in_features``).
        default_init: ``default_init(parameter, shape, options)``: the layer's own
            PyTorch init of that parameter, used where the config says ``default``.
        weighted: A layer with a weight that the top-level ``init`` and
            ``activation`` groups apply to (linear, conv1d and conv2d).
        doc: One line for listings.
        dense: The former name of ``weighted``, still accepted.
        nested: The layer holds layers of its own: a ``layers`` mapping in the same
            format as a model's (a residual block). They are resolved first; the
            shape rule gets the output shape of the last of them as the option
            ``body_shape``, and ``build`` gets them built, in order, as ``body``: a
            list of ``(name, module, activation or None)``.
        takes: The layout of input it takes, where one shape fits two
            (:data:`~annfactory.layer_shapes.SEQUENCE` or ``CHANNELS`` for 2-D,
            ``IDS`` for 1-D); ``"swap"`` for a layer that swaps them (transpose);
            None: any. The first such layer of a network sets its input's layout.
        init_field: ``init_field(parameter) -> "weight_init" | "bias_init" | None``:
            the layer field that sets the parameter's init (None: its default only).
            None: ``weight`` by ``weight_init`` and ``bias`` by ``bias_init``.
    """

    build: Callable[..., nn.Module]
    params: Mapping[str, Param]
    shape: ShapeRule | None
    default_init: DefaultInit | None
    weighted: bool
    doc: str
    nested: bool
    takes: str | None
    init_field: Callable[[str], str | None] | None

    def __init__(
        self,
        build: Callable[..., nn.Module],
        params: Mapping[str, Param] | None = None,
        shape: ShapeRule | None = None,
        default_init: DefaultInit | None = None,
        weighted: bool = False,
        doc: str = "",
        *,
        dense: bool | None = None,
        nested: bool = False,
        takes: str | None = None,
        init_field: Callable[[str], str | None] | None = None,
    ) -> None:
        # A frozen dataclass sets its fields through object.__setattr__ (as the
        # generated __init__ does); this one adds the former name of ``weighted``.
        fields = {
            "build": build,
            "params": {} if params is None else params,
            "shape": shape,
            "default_init": default_init,
            "weighted": weighted if dense is None else dense,
            "doc": doc,
            "nested": nested,
            "takes": takes,
            "init_field": init_field,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def dense(self) -> bool:
        """The former name of :attr:`weighted`."""
        return self.weighted


def in_features_first(cls: Callable[..., Any]) -> Callable[..., nn.Module]:
    """``build(input_shape, **options)`` for a class built as
    ``cls(in_features, **options)``: it gets the last dimension of the input shape."""

    def build(input_shape: Shape, **options: Any) -> nn.Module:
        module: nn.Module = cls(input_shape[-1], **options)
        return module

    build.__qualname__ = build.__name__ = getattr(cls, "__name__", "build")
    build.__doc__ = cls.__doc__
    return build


def _layer_type_of_class(cls: Any, /, **fields: Any) -> LayerType:
    """A :class:`LayerType` for an ``nn.Module`` class, built as
    ``cls(in_features, **options)`` (:func:`in_features_first`); its parameters'
    shapes are learnt on the meta device (:attr:`LayerType.shape` is None), and its
    default inits come from a ``default_inits``
    class attribute mapping parameter names to init names (or ``(name, params)``
    pairs)."""
    declared: Mapping[str, Any] = getattr(cls, "default_inits", {})

    def default_init(
        parameter: str, shape: LayerShape, opts: Mapping[str, Any]
    ) -> InitChoice:
        choice = declared.get(parameter)
        if choice is None:
            raise LookupError(parameter)
        return (choice, {}) if isinstance(choice, str) else (choice[0], dict(choice[1]))

    return LayerType(
        build=in_features_first(cls),
        default_init=default_init,
        **fields,
    )


def _options_from_init(cls: type, name: str) -> dict[str, Param]:
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    arguments = list(signature.parameters.values())[1:]
    if not arguments or arguments[0].name != "in_features":
        raise RegistrationError(
            f"layer {name!r}: __init__ must take in_features first (it is inferred)"
        )
    return params_from_arguments(arguments[1:], f"layer {name!r}")


#: Registry coercion: accept a :class:`LayerType` or an ``nn.Module`` class, whose
#: options are the ``__init__`` arguments after ``in_features`` and whose parameters'
#: shapes are learnt on the meta device.
_layer_from: EntryCoercion[LayerType] = EntryCoercion(
    kind="layer",
    entry_type=LayerType,
    entry_words="a LayerType",
    source_words="an nn.Module class",
    accepts=inspect.isclass,
    params_of=_options_from_init,
    make=_layer_type_of_class,
)

layers: Registry[LayerType] = Registry(
    "layer type", coerce=_layer_from, on_miss=load_plugins
)
"""The layer registry. Register an ``nn.Module`` class or a :class:`LayerType`."""


# ------------------------------------------------------------------------------------
# Built-in layer types.
# ------------------------------------------------------------------------------------


def _build_linear(input_shape: Shape, *, out_features: int, bias: bool) -> nn.Module:
    from torch import nn

    return nn.Linear(input_shape[-1], out_features, bias=bias)


def _linear_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # nn.Linear maps the last dimension and keeps the others.
    out_features = options["out_features"]
    parameters: dict[str, Shape] = {"weight": (out_features, input_shape[-1])}
    if options["bias"]:
        parameters["bias"] = (out_features,)
    return LayerShape((*input_shape[:-1], out_features), parameters)


def _linear_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # nn.Linear.reset_parameters and nn.ConvNd's: kaiming_uniform(a=sqrt(5)) on the
    # weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the
    # bias, with the weight's fan_in (torch.nn.init._calculate_fan_in_and_fan_out:
    # in_channels / groups times the kernel's elements for a convolution).
    if parameter == "weight":
        return "kaiming_uniform", {
            "a": math.sqrt(5),
            "mode": "fan_in",
            "nonlinearity": "leaky_relu",
        }
    fan_in, _ = fan_in_and_fan_out(tuple(shape.parameters["weight"]))
    bound = 1.0 / math.sqrt(fan_in)
    return "uniform", {"a": -bound, "b": bound}


def _build_dropout(input_shape: Shape, *, p: float) -> nn.Module:
    from torch import nn

    return nn.Dropout(p)


def _same_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    return LayerShape(input_shape)


def _build_batch_norm(
    input_shape: Shape,
    *,
    eps: float,
    momentum: float,
    affine: bool,
    track_running_stats: bool,
) -> nn.Module:
    from torch import nn

    from annfactory.sequence_modules import SequenceBatchNorm

    # Over the channels: BatchNorm1d for [features] and [channels, length],
    # BatchNorm2d for [channels, height, width]; over the features of a sequence.
    cls: type[nn.Module] = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
    if layout_of(input_shape) == SEQUENCE:
        cls = SequenceBatchNorm
    return cls(
        _normalized_size(input_shape),
        eps=eps,
        momentum=momentum,
        affine=affine,
        track_running_stats=track_running_stats,
    )


def _batch_norm_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # BatchNorm1d normalizes each feature of [N, C] or channel of [N, C, L];
    # BatchNorm2d each channel of [N, C, H, W].
    if len(input_shape) > 3:
        raise ValueError(
            "it takes [features], [channels, length] or [channels, height, width], "
            f"not {len(input_shape)} dimensions"
        )
    if layout_of(input_shape) == IDS:
        raise ValueError(f"it takes numbers, not {layout_text(input_shape)}")
    features = _normalized_size(input_shape)
    return _affine_shape(input_shape, features, options["affine"], True)


def _normalized_size(input_shape: Shape) -> int:
    """The features (of a vector or a sequence) or channels that a batch norm or a
    standardization acts on, each over the others."""
    return input_shape[-1] if layout_of(input_shape) == SEQUENCE else input_shape[0]


def _build_layer_norm(
    input_shape: Shape, *, eps: float, elementwise_affine: bool, bias: bool
) -> nn.Module:
    from torch import nn

    return nn.LayerNorm(
        input_shape[-1], eps=eps, elementwise_affine=elementwise_affine, bias=bias
    )


def _layer_norm_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # nn.LayerNorm(normalized_shape=last dimension) normalizes over that dimension.
    affine = options["elementwise_affine"]
    return _affine_shape(input_shape, input_shape[-1], affine, options["bias"])


def _affine_shape(
    input_shape: Shape, features: int, affine: bool, bias: bool
) -> LayerShape:
    """A normalization's shapes: the input's, and a scale and shift per feature."""
    parameters: dict[str, Shape] = {}
    if affine:
        parameters["weight"] = (features,)
        if bias:
            parameters["bias"] = (features,)
    return LayerShape(input_shape, parameters)


def build_on_meta(
    layer_type: LayerType, input_shape: Shape, options: Mapping[str, Any]
) -> nn.Module:
    """The layer built on the meta device, where it allocates nothing: how the
    shapes of a layer type without a shape rule (a plugin class) are learnt."""
    import torch

    with torch.device("meta"):
        return layer_type.build(input_shape, **options)


def _norm_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # Normalization layers start as the identity map: weight 1, bias 0.
    return ("ones", {}) if parameter == "weight" else ("zeros", {})


def _build_standardize(input_shape: Shape) -> nn.Module:
    from annfactory.preprocessing import Standardize

    # Per feature of a vector; per channel of a sample of more dimensions.
    return Standardize(input_shape)


def _table_columns(options: Mapping[str, Any]) -> Any:
    from annfactory.columns import TableColumns
    from annfactory.errors import ConfigError

    try:
        return TableColumns.from_dict(options["columns"], "columns")
    except ConfigError as error:
        raise ValueError(
            f"its record of the table's columns: {str(error).rstrip('.')}"
        ) from None


def _encode_table_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    columns = _table_columns(options)
    if tuple(input_shape) != (len(columns.features),):
        raise ValueError(
            f"it takes one number per column of the table, [{len(columns.features)}], "
            f"not {list(input_shape)}"
        )
    return LayerShape((columns.width,), dict(columns.embedding_shapes))


def _build_encode_table(input_shape: Shape, *, columns: Mapping[str, Any]) -> nn.Module:
    from annfactory.table_encoding import TableEncoder

    return TableEncoder(_table_columns({"columns": columns}))


def _embedding_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # torch.nn.Embedding's own init: N(0, 1).
    return ("normal", {"mean": 0.0, "std": 1.0})


def _build_destandardize(input_shape: Shape) -> nn.Module:
    from annfactory.preprocessing import Destandardize

    return Destandardize(input_shape[-1])


_EPS = Param(
    float, 1e-5, "added to the variance for numerical stability", low=0, low_open=True
)

layers.register("linear", LayerType(
    build=_build_linear,
    params={
        "out_features": Param(int, REQUIRED, "output size", low=1),
        "bias": Param(bool, True, "learn an additive bias"),
    },
    shape=_linear_shape,
    default_init=_linear_default,
    weighted=True,
    doc="y = x W^T + b (torch.nn.Linear)",
))  # fmt: skip
layers.register("dropout", LayerType(
    build=_build_dropout,
    params={"p": Param(float, 0.5, "probability of zeroing a unit (training only)",
                       low=0, high=1)},
    shape=_same_shape,
    doc="zeroes units with probability p while training (torch.nn.Dropout)",
))  # fmt: skip
layers.register("batch_norm", LayerType(
    build=_build_batch_norm,
    params={
        "eps": _EPS,
        "momentum": Param(float, 0.1, "running statistics update rate", low=0, high=1),
        "affine": Param(bool, True, "learn a scale (weight) and shift (bias)"),
        "track_running_stats": Param(bool, True, "keep running mean and variance"),
    },
    shape=_batch_norm_shape,
    default_init=_norm_default,
    doc="normalizes each feature or channel over the batch (torch.nn.BatchNorm1d/2d)",
))  # fmt: skip
layers.register("layer_norm", LayerType(
    build=_build_layer_norm,
    params={
        "eps": _EPS,
        "elementwise_affine": Param(bool, True, "learn a per-feature scale (weight)"),
        "bias": Param(bool, True, "learn a per-feature shift (needs the weight)"),
    },
    shape=_layer_norm_shape,
    default_init=_norm_default,
    doc="normalizes each sample over its features (torch.nn.LayerNorm)",
))  # fmt: skip
layers.register("standardize", LayerType(
    build=_build_standardize,
    shape=_same_shape,
    doc="(x - mean) / scale per feature (per channel of an image); task=train fits "
    "the buffers on training rows",
))  # fmt: skip
layers.register("encode_table", LayerType(
    build=_build_encode_table,
    params={
        "columns": Param(
            dict,
            REQUIRED,
            "the table's feature columns and their fitted values, as task=train "
            "records them",
        )
    },
    shape=_encode_table_shape,
    default_init=_embedding_default,
    doc="a table's row (a number or a category's code per column) as inputs: "
    "imputation, missing indicators, standardization, one-hot, embeddings",
))  # fmt: skip
layers.register("destandardize", LayerType(
    build=_build_destandardize,
    shape=_same_shape,
    doc="x * scale + mean per feature: a standardized regression output in its units",
))  # fmt: skip


# ------------------------------------------------------------------------------------
# Convolutions, pooling and flatten (their rules and builders: annfactory.conv_layers)
# ------------------------------------------------------------------------------------

for _dims in (1, 2):
    layers.register(f"conv{_dims}d", LayerType(
        build=build_conv(_dims),
        params=conv_params(_dims),
        shape=conv_shape(_dims),
        default_init=_linear_default,
        weighted=True,
        doc=f"{_dims}-D convolution over [channels, {SPATIAL_NAMES[_dims]}] "
        f"(torch.nn.Conv{_dims}d)",
        takes=CHANNELS,
    ))  # fmt: skip
    for _kind in ("Max", "Avg"):
        layers.register(f"{_kind.lower()}_pool{_dims}d", LayerType(
            build=build_pool(_kind, _dims),
            params=pool_params(_dims),
            shape=pool_shape(_dims),
            doc=f"{_kind.lower()} over each window of every channel "
            f"(torch.nn.{_kind}Pool{_dims}d)",
            takes=CHANNELS,
        ))  # fmt: skip
layers.register("adaptive_avg_pool2d", LayerType(
    build=build_adaptive_avg_pool2d,
    params={"output_size": SizeParam(int, REQUIRED, "the output's height and width",
                                     low=1, dims=2)},
    shape=adaptive_avg_pool2d_shape,
    doc="averages each channel to output_size (torch.nn.AdaptiveAvgPool2d)",
))  # fmt: skip
layers.register("flatten", LayerType(
    build=build_flatten,
    params={
        "start_dim": Param(int, 1, "first dimension to join (0 is the batch's)",
                           low=1),
        "end_dim": Param(int, -1, "last dimension to join (-1: the last)"),
    },
    shape=flatten_shape,
    doc="joins dimensions into one: [C, H, W] -> [C*H*W] (torch.nn.Flatten)",
))  # fmt: skip


# ------------------------------------------------------------------------------------
# Sequences [time, features] (their rules and builders: annfactory.sequence_layers)
# ------------------------------------------------------------------------------------

layers.register("transpose", LayerType(
    build=sq.build_transpose,
    shape=sq.transpose_shape,
    takes="swap",
    doc="swaps the two last dimensions: a sequence [T, F] <-> a channel map [F, T]",
))  # fmt: skip
layers.register("embedding", LayerType(
    build=sq.build_embedding,
    params=sq.embedding_params(),
    shape=sq.embedding_shape,
    default_init=_embedding_default,
    takes=IDS,
    doc="[T] integer ids -> [T, embedding_dim] vectors (torch.nn.Embedding)",
))  # fmt: skip
for _kind, _torch in (("lstm", "LSTM"), ("gru", "GRU")):
    layers.register(_kind, LayerType(
        build=sq.build_recurrent(_kind),
        params=sq.recurrent_params(),
        shape=sq.recurrent_shape(_kind),
        default_init=sq.recurrent_default(_kind),
        weighted=True,
        takes=SEQUENCE,
        init_field=sq.recurrent_field,
        doc=f"recurrent layers over [T, F] -> [H] (last or mean) or [T, H] "
        f"(torch.nn.{_torch})",
    ))  # fmt: skip
layers.register("transformer_encoder", LayerType(
    build=sq.build_transformer,
    params=sq.transformer_params(),
    shape=sq.transformer_shape,
    default_init=sq.transformer_default,
    weighted=True,
    takes=SEQUENCE,
    init_field=sq.transformer_field,
    doc="self-attention encoder layers over [T, d_model] "
    "(torch.nn.TransformerEncoderLayer)",
))  # fmt: skip
layers.register("positional_encoding", LayerType(
    build=sq.build_positional,
    params=sq.positional_params(),
    shape=sq.positional_shape,
    default_init=sq.positional_default,
    takes=SEQUENCE,
    doc="adds a vector per position of [T, F]: sinusoidal or learned",
))  # fmt: skip
layers.register("sequence_pool", LayerType(
    build=sq.build_sequence_pool,
    params={"mode": Param(str, "mean", "mean or max over the time steps",
                          choices=("mean", "max"))},
    shape=sq.sequence_pool_shape,
    takes=SEQUENCE,
    doc="[T, F] -> [F]: the mean or max over time",
))  # fmt: skip


# ------------------------------------------------------------------------------------
# Residual blocks: x + body(x), the body a mapping of layers of its own
# ------------------------------------------------------------------------------------

#: The name of a residual block's projection of its input (a child module).
PROJECTION: Final = "projection"


def _projection_strides(
    input_shape: Shape, body_shape: Shape
) -> tuple[int, ...] | None:
    """The strides of a 1x1 convolution that maps each spatial size of the input to
    the body's (None if there are none): ``(size - 1) // stride + 1 == target``."""
    strides = []
    for size, target in zip(input_shape[1:], body_shape[1:], strict=True):
        fits = [s for s in range(1, size + 1) if (size - 1) // s + 1 == target]
        if not fits:
            return None
        strides.append(fits[0])
    return tuple(strides)


def _residual_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # x + body(x): the body's shape, and the projection's parameters if it maps x.
    body_shape = options["body_shape"]
    unlike = layout_of(body_shape) != layout_of(input_shape)
    if unlike and len(body_shape) == len(input_shape):
        raise ValueError(
            f"its input is {layout_text(input_shape)} and its body gives "
            f"{layout_text(body_shape)}: x + body(x) would add unlike dimensions"
        )
    if body_shape == tuple(input_shape) or not options["projection"]:
        return LayerShape(body_shape)
    if layout_of(input_shape) == SEQUENCE:
        return _sequence_projection(input_shape, body_shape)
    if len(body_shape) != len(input_shape) or len(input_shape) > 3:
        raise ValueError(
            f"no projection maps the input {list(input_shape)} to the body's output "
            f"{list(body_shape)}: a linear or 1x1 convolution keeps the rank"
        )
    if len(input_shape) > 1 and _projection_strides(input_shape, body_shape) is None:
        raise ValueError(
            f"no 1x1 convolution maps the input's size {list(input_shape[1:])} to "
            f"the body's {list(body_shape[1:])}"
        )
    kernel = (1,) * (len(input_shape) - 1)
    return _projected(body_shape, input_shape[0], kernel)


def _sequence_projection(input_shape: Shape, body_shape: Shape) -> LayerShape:
    """A linear projection of each step's features: ``[T, F] -> [T, F']``."""
    if input_shape[0] != body_shape[0]:
        raise ValueError(
            f"no projection maps the input's {input_shape[0]} steps to the body's "
            f"{body_shape[0]}: a linear projection maps each step's features"
        )
    return _projected(body_shape, input_shape[-1])


def _projected(body_shape: Shape, inputs: int, kernel: Shape = ()) -> LayerShape:
    """The block's shapes with a projection of ``inputs`` features or channels to
    the body's (its last dimension for a sequence, else its first)."""
    outputs = body_shape[-1] if layout_of(body_shape) == SEQUENCE else body_shape[0]
    return LayerShape(
        body_shape,
        {
            f"{PROJECTION}.weight": (outputs, inputs, *kernel),
            f"{PROJECTION}.bias": (outputs,),
        },
    )


def _build_residual(
    input_shape: Shape,
    *,
    projection: bool,
    body: Sequence[tuple[str, nn.Module, nn.Module | None]],
    body_shape: Shape,
) -> nn.Module:
    from torch import nn

    from annfactory.blocks import Residual

    shortcut: nn.Module | None = None
    if projection and tuple(body_shape) != tuple(input_shape):
        if len(input_shape) == 1 or layout_of(input_shape) == SEQUENCE:
            shortcut = nn.Linear(input_shape[-1], body_shape[-1])
        else:
            strides: Any = _projection_strides(input_shape, body_shape)
            cls = nn.Conv1d if len(input_shape) == 2 else nn.Conv2d
            shortcut = cls(input_shape[0], body_shape[0], 1, stride=strides)
    return Residual(body, shortcut)


def _residual_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # The projection is an nn.Linear or nn.ConvNd: torch's default init of either.
    name = parameter.removeprefix(f"{PROJECTION}.")
    weight = shape.parameters[f"{PROJECTION}.weight"]
    return _linear_default(name, LayerShape(shape.output, {"weight": weight}), options)


layers.register("residual", LayerType(
    build=_build_residual,
    params={
        "projection": Param(
            bool, False, "project the input (a linear or 1x1 convolution) when the "
            "body changes its shape"
        ),
    },
    shape=_residual_shape,
    default_init=_residual_default,
    nested=True,
    doc="x + body(x), the body its own mapping of layers (a ResNet block)",
))  # fmt: skip
