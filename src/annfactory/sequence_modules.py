"""The modules that the sequence layer types build (:mod:`annfactory.sequence_layers`):
torch.nn's recurrent, attention and embedding layers with the output a layer of a
network gives, and the small modules around them (transpose, positions, pooling over
time, a batch norm over a sequence's features).

A sample is ``[time, features]``, batched as ``[batch, time, features]``
(``batch_first=True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "GRU",
    "LSTM",
    "Embedding",
    "LearnedPositions",
    "SequenceBatchNorm",
    "SequencePool",
    "SinusoidalPositions",
    "TransformerEncoder",
    "Transpose",
    "sinusoid",
]


class Transpose(nn.Module):
    """Swaps a sample's two last dimensions: ``[time, features]`` <-> ``[channels,
    length]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-1, -2)


class _Recurrent(nn.RNNBase):
    """torch's recurrent layer (``batch_first``) that gives one tensor: ``last`` (the
    final step; for a bidirectional layer the forward direction's last step with the
    backward direction's first), ``mean`` over time, or the whole ``sequence``."""

    def __init__(self, input_size: int, *, output: str, **options: object) -> None:
        # nn.LSTM's or nn.GRU's __init__, next in the subclass's MRO (not RNNBase's,
        # which takes the mode first).
        super().__init__(input_size, batch_first=True, **options)  # type: ignore[arg-type]
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps: torch.Tensor = super().forward(x)[0]
        if self.output == "sequence":
            return steps
        if self.output == "mean":
            return steps.mean(dim=1)
        if not self.bidirectional:
            return steps[:, -1]
        size = self.hidden_size
        return torch.cat((steps[:, -1, :size], steps[:, 0, size:]), dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output={self.output}"


class LSTM(_Recurrent, nn.LSTM):  # type: ignore[misc]
    """torch.nn.LSTM (``batch_first``) that gives one tensor: see ``output``."""


class GRU(_Recurrent, nn.GRU):  # type: ignore[misc]
    """torch.nn.GRU (``batch_first``) that gives one tensor: see ``output``."""


class TransformerEncoder(nn.Module):
    """A stack of ``torch.nn.TransformerEncoderLayer`` (``batch_first``), each built
    on its own (torch's ``TransformerEncoder`` copies its first layer), under
    ``layers.0``, ``layers.1``, ..."""

    def __init__(self, layers: Sequence[nn.TransformerEncoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def sinusoid(length: int, width: int) -> torch.Tensor:
    r"""The sinusoidal positions of Vaswani et al. (2017), ``[length, width]``:
    :math:`PE_{t, 2i} = \sin(t / 10000^{2i / d})`,
    :math:`PE_{t, 2i+1} = \cos(t / 10000^{2i / d})`."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    rate = torch.exp(
        torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width)
    )
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : width // 2]
    return table


class SinusoidalPositions(nn.Module):
    """Adds the sinusoidal positions (:func:`sinusoid`) to ``[time, features]``. No
    parameters: the table is a buffer that is not saved."""

    table: torch.Tensor

    def __init__(self, max_length: int, width: int) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(max_length, width), persistent=False)

    def reset_running_stats(self) -> None:
        """Fills the table (the factory calls this after it gives buffers memory)."""
        with torch.no_grad():
            self.table.copy_(sinusoid(*self.table.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]

    def extra_repr(self) -> str:
        return f"max_length={self.table.shape[0]}, features={self.table.shape[1]}"


class LearnedPositions(nn.Module):
    """Adds a learned vector per position (``weight``, ``[max_length, features]``)."""

    def __init__(self, max_length: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_length, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]

    def extra_repr(self) -> str:
        return f"max_length={self.weight.shape[0]}, features={self.weight.shape[1]}"


class SequencePool(nn.Module):
    """``[time, features] -> [features]``: the mean or the max over time."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "max":
            return x.amax(dim=1)
        return x.mean(dim=1)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class SequenceBatchNorm(nn.BatchNorm1d):
    """torch.nn.BatchNorm1d over each feature of ``[batch, time, features]`` (over the
    batch and the time steps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class Embedding(nn.Embedding):
    """torch.nn.Embedding, whose ``padding_idx`` row is zero after any init, as
    torch's own init leaves it."""

    def finish_init(self) -> None:
        """Zeroes the padding row (the factory calls this after the inits)."""
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].zero_()
