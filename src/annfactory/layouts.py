"""The layout of a sample's shape: what its dimensions mean, without torch.

``[T, F]`` (a sequence) and ``[C, L]`` (a channel map) are both 2-D; a layer that acts
on features or channels (``batch_norm``, ``standardize``, a residual block's
projection) needs to know which it has. A :class:`LaidShape` is a shape with its layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "CHANNELS",
    "IDS",
    "LAYOUTS",
    "SEQUENCE",
    "VECTOR",
    "LaidShape",
    "layout_of",
    "layout_text",
    "with_layout",
]

#: ``[features]``: a vector.
VECTOR: Final = "vector"
#: ``[time]``: integer ids (an embedding's input).
IDS: Final = "ids"
#: ``[time, features]``: a sequence, as torch's ``batch_first=True`` takes it.
SEQUENCE: Final = "sequence"
#: ``[channels, length]`` or ``[channels, height, width]``: channels first.
CHANNELS: Final = "channels"
LAYOUTS: Final = (VECTOR, IDS, SEQUENCE, CHANNELS)


class LaidShape(tuple[int, ...]):
    """A sample's shape with its layout (:data:`SEQUENCE`, ...): a tuple of sizes, equal
    to the plain tuple of the same sizes (the layout is not compared)."""

    layout: str

    def __new__(cls, sizes: Iterable[int], layout: str) -> LaidShape:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        shape = super().__new__(cls, sizes)
        shape.layout = layout
        return shape

    def __getnewargs__(self) -> tuple[tuple[int, ...], str]:
        return tuple(self), self.layout


def layout_of(shape: tuple[int, ...]) -> str:
    """The layout of ``shape``: its own, else the one its rank had before layouts
    (a vector for one dimension, channels first for more)."""
    layout = getattr(shape, "layout", None)
    if layout is not None:
        return str(layout)
    return VECTOR if len(shape) == 1 else CHANNELS


def with_layout(shape: Iterable[int], layout: str) -> LaidShape:
    """``shape`` with ``layout``."""
    return LaidShape(shape, layout)


def layout_text(shape: tuple[int, ...]) -> str:
    """The layout of ``shape`` in words, with its dimensions' names: ``a sequence
    [time, features]``."""
    layout = layout_of(shape)
    if layout == SEQUENCE:
        return "a sequence [time, features]"
    if layout == IDS:
        return "integer ids [time]"
    if layout == VECTOR:
        return "a vector [features]"
    names = "[channels, height, width]" if len(shape) == 3 else "[channels, length]"
    return f"a channel map {names}" if len(shape) in (2, 3) else "a channel map"
