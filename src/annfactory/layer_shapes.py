"""The shapes layer types speak in, without torch: a sample's :data:`Shape` and its
layout (:class:`LaidShape`), a layer's :class:`LayerShape` (its output and each
parameter), the :data:`ShapeRule` that computes one, and :class:`SizeParam`, an option
with one size per spatial dimension.

Below :mod:`annfactory.layers` and the layer types' own modules
(:mod:`annfactory.conv_layers`), which all describe their shapes with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.layouts import (
    CHANNELS,
    IDS,
    LAYOUTS,
    SEQUENCE,
    VECTOR,
    LaidShape,
    layout_of,
    layout_text,
    with_layout,
)
from annfactory.params import Param

__all__ = [
    "CHANNELS",
    "IDS",
    "LAYOUTS",
    "SEQUENCE",
    "VECTOR",
    "LaidShape",
    "LayerShape",
    "Shape",
    "ShapeRule",
    "SizeParam",
    "layout_of",
    "layout_text",
    "with_layout",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerShape:
    """The shapes of a layer for one input shape (no batch dimension anywhere).

    Attributes:
        output: The shape of the layer's output.
        parameters: Each parameter's path in the layer (``weight``, or
            ``block.fc1.weight`` in a child module) and its shape, in the order the
            module registers them.
    """

    output: Shape
    parameters: Mapping[str, Shape] = field(default_factory=dict)


@dataclass(frozen=True)
class SizeParam(Param):
    """An option with one integer per spatial dimension, as torch.nn takes it: an
    integer for every dimension or a list of ``dims`` integers (``kernel_size: 3`` or
    ``[3, 5]``).

    Args:
        dims: The number of spatial dimensions (2 for ``conv2d``).
        words: Strings it also takes (``padding: same``).
        null_means: What ``null`` means, in words; empty: ``null`` is refused.
    """

    dims: int = 1
    words: tuple[str, ...] = ()
    null_means: str = ""

    def allowed(self) -> str:
        """What values are allowed, in words."""
        text = "an integer"
        if self.low is not None:
            text += f" >= {int(self.low)}"
        if self.dims > 1:
            text += f" or a list of {self.dims} of them"
        if self.words:
            text += ", or " + " or ".join(repr(word) for word in self.words)
        if self.null_means:
            text += f", or null ({self.null_means})"
        return text

    def validate(self, value: Any, key: str) -> Any:
        """``value`` as an int, a list of ints, one of the words or None; else a
        :class:`ConfigError` naming ``key``."""
        if value is None and self.null_means:
            return None
        if isinstance(value, str):
            if value in self.words:
                return value
            if self.words:
                raise UnknownNameError(
                    key,
                    key.rpartition(".")[2] or "value",
                    value,
                    self.words,
                    advice=f"or give {self.allowed().partition(', or ')[0]}.",
                )
        if isinstance(value, list | tuple):
            sizes = list(value)
            good = len(sizes) == self.dims and all(
                isinstance(size, int)
                and not isinstance(size, bool)
                and (self.low is None or size >= self.low)
                for size in sizes
            )
            if not good:
                low = "" if self.low is None else f" >= {int(self.low)}"
                raise ConfigError(
                    key,
                    f"{sizes!r} is not a list of {self.dims} integers{low}.",
                    f"Allowed: {self.allowed()}.",
                )
            return sizes
        if value is None or isinstance(value, str):
            raise ConfigError(
                key,
                f"{value!r} is not {self.allowed()}.",
                f"Allowed: {self.allowed()}.",
            )
        return Param(int, low=self.low, doc=self.doc).validate(value, key)


ShapeRule = Callable[[Shape, Mapping[str, Any]], LayerShape]
"""``shape(input_shape, options) -> LayerShape``: pure, no torch. Raises ValueError
for an input shape the layer cannot take (the message says why)."""
