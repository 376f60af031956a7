"""Convolutions, pooling and flatten: the shape rules, builders and options of the
``conv1d``, ``conv2d``, ``max_pool*``, ``avg_pool*``, ``adaptive_avg_pool2d`` and
``flatten`` layer types, which :mod:`annfactory.layers` registers.

Samples are ``[channels, length]`` (1-D) and ``[channels, height, width]`` (2-D),
channels first as torch.nn takes them. The shape rules are pure (no torch); torch is
imported only when a module is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from annfactory.layer_shapes import (
    SEQUENCE,
    LayerShape,
    Shape,
    ShapeRule,
    SizeParam,
    layout_of,
    layout_text,
)
from annfactory.params import REQUIRED, Param

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "SPATIAL_NAMES",
    "InputRankError",
    "adaptive_avg_pool2d_shape",
    "build_adaptive_avg_pool2d",
    "build_conv",
    "build_flatten",
    "build_pool",
    "conv_params",
    "conv_shape",
    "flatten_shape",
    "pool_params",
    "pool_shape",
]

SPATIAL_NAMES: Final = {1: "length", 2: "height, width"}


class InputRankError(ValueError):
    """A shape rule's input has the wrong number of dimensions (a conv2d on a
    vector); ``dims`` is the number it takes, for the fix the message suggests."""

    def __init__(self, message: str, dims: int) -> None:
        super().__init__(message)
        self.dims = dims


def _sizes(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    """One size per spatial dimension: an int stands for all of them."""
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _as_torch(value: Any) -> Any:
    """A list option as the tuple torch.nn takes."""
    return tuple(value) if isinstance(value, list) else value


def _spatial(input_shape: Shape, dims: int) -> tuple[int, tuple[int, ...]]:
    """``(channels, spatial sizes)`` of a sample with ``dims`` spatial dimensions."""
    if len(input_shape) != dims + 1:
        expected = f"[channels, {SPATIAL_NAMES[dims]}]"
        raise InputRankError(
            f"it takes {expected} ({dims + 1} dimensions), not {len(input_shape)}",
            dims + 1,
        )
    if layout_of(input_shape) == SEQUENCE:
        raise ValueError(
            f"it takes [channels, {SPATIAL_NAMES[dims]}], not "
            f"{layout_text(input_shape)} (a transpose layer before it makes one)"
        )
    return input_shape[0], tuple(input_shape[1:])


def _size_text(sizes: Sequence[int]) -> str:
    """``8x8``; ``3`` for a size that is the same in every dimension."""
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


def _window(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """The output's spatial sizes of a sliding window, as torch.nn computes them:
    ``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``.

    Raises:
        ValueError: The window is larger than the (padded) input: names both.
    """
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    padded = [size + 2 * p for size, p in zip(spatial, padding, strict=True)]
    if any(span > size for span, size in zip(spans, padded, strict=True)):
        text = f"kernel_size {_size_text(kernel)}"
        if any(d != 1 for d in dilation):
            text += f" with dilation {_size_text(dilation)} spans {_size_text(spans)}"
        text += f" > input {'x'.join(map(str, spatial))}"
        if any(padding):
            text += f" padded to {'x'.join(map(str, padded))}"
        raise ValueError(text)
    return tuple(
        (size - span) // s + 1
        for size, span, s in zip(padded, spans, stride, strict=True)
    )


def conv_shape(dims: int) -> ShapeRule:
    """The shape rule of a ``dims``-D convolution: ``[out_channels, *sizes]``,
    each size as torch.nn.ConvNd computes it; weight ``[out_channels,
    in_channels / groups, *kernel]``, bias ``[out_channels]``."""

    def shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
        in_channels, spatial = _spatial(input_shape, dims)
        out_channels, groups = options["out_channels"], options["groups"]
        for which, channels in (("in", in_channels), ("out", out_channels)):
            if channels % groups:
                raise ValueError(
                    f"groups {groups} does not divide its {which}_channels {channels}"
                )
        kernel = _sizes(options["kernel_size"], dims)
        stride = _sizes(options["stride"], dims)
        dilation = _sizes(options["dilation"], dims)
        padding = options["padding"]
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    "padding 'same' needs stride 1 (torch does not pad strided "
                    "convolutions to the same size)"
                )
            # torch pads dilation * (kernel - 1) in all, so every size stays.
            output = spatial
        else:
            pads = (0,) * dims if padding == "valid" else _sizes(padding, dims)
            output = _window(spatial, kernel, stride, pads, dilation)
        parameters: dict[str, Shape] = {
            "weight": (out_channels, in_channels // groups, *kernel)
        }
        if options["bias"]:
            parameters["bias"] = (out_channels,)
        return LayerShape((out_channels, *output), parameters)

    return shape


def build_conv(dims: int) -> Callable[..., nn.Module]:
    """``build(input_shape, **options)`` of torch.nn.Conv1d or Conv2d, its
    in_channels the input's channels."""

    def build(input_shape: Shape, **options: Any) -> nn.Module:
        from torch import nn

        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        torch_options = {name: _as_torch(value) for name, value in options.items()}
        module: nn.Module = cls(input_shape[0], **torch_options)
        return module

    build.__name__ = build.__qualname__ = f"build_conv{dims}d"
    return build


def pool_shape(dims: int) -> ShapeRule:
    """The shape rule of a ``dims``-D max or average pool: the channels kept, each
    size as torch.nn computes it (``stride: null`` is the kernel_size)."""

    def shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
        channels, spatial = _spatial(input_shape, dims)
        kernel = _sizes(options["kernel_size"], dims)
        given = options["stride"]
        stride = kernel if given is None else _sizes(given, dims)
        padding = _sizes(options["padding"], dims)
        if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
            raise ValueError(
                f"padding {_size_text(padding)} is more than half of kernel_size "
                f"{_size_text(kernel)}"
            )
        output = _window(spatial, kernel, stride, padding, (1,) * dims)
        return LayerShape((channels, *output))

    return shape


def build_pool(kind: str, dims: int) -> Callable[..., nn.Module]:
    """``build(input_shape, **options)`` of torch.nn's ``<kind>Pool<dims>d``."""

    def build(input_shape: Shape, **options: Any) -> nn.Module:
        from torch import nn

        cls = getattr(nn, f"{kind}Pool{dims}d")
        module: nn.Module = cls(
            **{name: _as_torch(value) for name, value in options.items()}
        )
        return module

    build.__name__ = build.__qualname__ = f"build_{kind.lower()}_pool{dims}d"
    return build


def adaptive_avg_pool2d_shape(
    input_shape: Shape, options: Mapping[str, Any]
) -> LayerShape:
    channels, _ = _spatial(input_shape, 2)
    return LayerShape((channels, *_sizes(options["output_size"], 2)))


def build_adaptive_avg_pool2d(input_shape: Shape, *, output_size: Any) -> nn.Module:
    from torch import nn

    return nn.AdaptiveAvgPool2d(_as_torch(output_size))


def _flatten_dims(input_shape: Shape, options: Mapping[str, Any]) -> tuple[int, int]:
    """The sample's dimensions ``[first, last)`` that flatten joins (torch.nn's
    ``start_dim`` and ``end_dim`` count the batch dimension)."""
    rank = len(input_shape) + 1
    start, end = options["start_dim"], options["end_dim"]
    last = end + rank if end < 0 else end
    if not start <= last < rank:
        raise ValueError(
            f"start_dim {start} and end_dim {end} select no dimensions of a "
            f"[batch, {', '.join(map(str, input_shape))}] input"
        )
    return start - 1, last


def flatten_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    first, last = _flatten_dims(input_shape, options)
    joined = math.prod(input_shape[first:last])
    return LayerShape((*input_shape[:first], joined, *input_shape[last:]))


def build_flatten(input_shape: Shape, *, start_dim: int, end_dim: int) -> nn.Module:
    from torch import nn

    return nn.Flatten(start_dim, end_dim)


def _kernel(dims: int, doc: str) -> SizeParam:
    return SizeParam(int, REQUIRED, doc, low=1, dims=dims)


def conv_params(dims: int) -> dict[str, Param]:
    return {
        "out_channels": Param(int, REQUIRED, "output channels", low=1),
        "kernel_size": _kernel(dims, "size of the convolving kernel"),
        "stride": SizeParam(int, 1, "step of the kernel", low=1, dims=dims),
        "padding": SizeParam(
            int, 0, "zeros added to both sides", low=0, dims=dims,
            words=("same", "valid"),
        ),
        "dilation": SizeParam(int, 1, "spacing of the kernel's elements", low=1,
                              dims=dims),
        "groups": Param(int, 1, "blocked connections from input to output channels",
                        low=1),
        "bias": Param(bool, True, "learn an additive bias per output channel"),
    }  # fmt: skip


def pool_params(dims: int) -> dict[str, Param]:
    return {
        "kernel_size": _kernel(dims, "size of the window"),
        "stride": SizeParam(
            int, None, "step of the window", low=1, dims=dims,
            null_means="the kernel_size",
        ),
        "padding": SizeParam(int, 0, "implicit padding on both sides", low=0,
                             dims=dims),
    }  # fmt: skip
