"""Preprocessing modules that a trained network carries: standardization of its
input, and the inverse standardization of a regression target.

``task=train`` fits them on the training split and saves them as the buffers of the
network's first (and, for regression, last) layer, so a saved run takes raw rows and
answers in the target's own units. As layer types (``standardize``,
``destandardize``) they are built like any other layer, and their buffers are saved
and loaded with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from annfactory.layouts import SEQUENCE, layout_of

__all__ = ["Destandardize", "Standardize"]


class _Affine(nn.Module):
    """A ``mean`` and ``scale`` per feature, or per channel of an image, as buffers
    (saved with the weights).

    Args:
        shape: The shape of one sample: ``[features]``, or ``[channels, ...]`` for a
            sample of more dimensions, whose buffers then have shape
            ``[channels, 1, ...]`` and broadcast over the positions (images are
            standardized per channel); a sequence ``[time, features]`` has them
            per feature, ``[features]``.
    """

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shape: int | tuple[int, ...]) -> None:
        super().__init__()
        sample = (shape,) if isinstance(shape, int) else tuple(shape)
        buffer_shape = (sample[0],) + (1,) * (len(sample) - 1)
        if not isinstance(shape, int) and layout_of(shape) == SEQUENCE:
            buffer_shape = (sample[-1],)  # per feature, over the time steps
        self.register_buffer("mean", torch.zeros(buffer_shape))
        self.register_buffer("scale", torch.ones(buffer_shape))

    def reset_running_stats(self) -> None:
        """The identity map: mean 0, scale 1 (the factory calls this after it gives
        the buffers memory, as for a batch norm's running statistics)."""
        with torch.no_grad():
            self.mean.zero_()
            self.scale.fill_(1.0)

    def extra_repr(self) -> str:
        if self.mean.dim() == 1:
            return f"features={self.mean.shape[0]}"
        return f"channels={self.mean.shape[0]}"


class Standardize(_Affine):
    """``(x - mean) / scale`` per feature: a standard scaler fitted on training rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class Destandardize(_Affine):
    """``x * scale + mean``: a standardized prediction back in the target's units."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean
