"""The table encoder's forward time against the same encoding written by hand.

A batch of 1024 rows of 23 columns: 16 numeric (4 with a missing indicator, 1% of
cells missing), 5 one-hot columns (3 to 10 levels, 2 with a missing level) and 2
embedding columns (30 and 100 levels). The hand-written equivalent is what a user
writes for clean codes: ``torch.where`` (or ``torch.nan_to_num``) for the medians,
``one_hot`` of the integer codes, ``embedding``, ``cat``: it handles neither unseen
codes nor NaN codes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_table_encoder.py
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch.nn import functional
from torch.utils import benchmark

from annfactory.columns import Column, TableColumns
from annfactory.table_encoding import TableEncoder

NUMERIC = 16
ONEHOT_LEVELS = (3, 4, 5, 7, 10)
EMBEDDING_LEVELS = (30, 100)
ROUNDS = 7


def table() -> TableColumns:
    """The benchmark's 23 columns, numeric first."""
    numeric = tuple(
        Column(f"x{i}", "numeric", median=0.1, mean=0.0, scale=1.5, indicator=i < 4)
        for i in range(NUMERIC)
    )
    onehot = tuple(
        Column(
            f"c{i}",
            "categorical",
            vocabulary=tuple(str(k) for k in range(levels - (i < 2))),
            missing_level=i < 2,
            encoding="onehot",
        )
        for i, levels in enumerate(ONEHOT_LEVELS)
    )
    embedded = tuple(
        Column(
            f"e{i}",
            "categorical",
            vocabulary=tuple(str(k) for k in range(levels)),
            encoding="embedding",
        )
        for i, levels in enumerate(EMBEDDING_LEVELS)
    )
    return TableColumns(numeric + onehot + embedded)


def rows(count: int) -> torch.Tensor:
    """Random rows: numbers with 1% NaN, valid codes (no NaN: the hand-written
    encoder cannot take them)."""
    generator = torch.Generator().manual_seed(0)
    numbers = torch.randn(count, NUMERIC, generator=generator)
    numbers[torch.rand(count, NUMERIC, generator=generator) < 0.01] = float("nan")
    # Codes of the vocabulary (the missing level's is for NaN only).
    sizes = [n - (i < 2) for i, n in enumerate(ONEHOT_LEVELS)] + [*EMBEDDING_LEVELS]
    codes = [torch.randint(0, n, (count, 1), generator=generator) for n in sizes]
    return torch.cat([numbers, torch.cat(codes, dim=1).float()], dim=1)


class HandWritten(torch.nn.Module):
    """The same outputs for clean codes, as a user writes it for one table."""

    def __init__(self, encoder: TableEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.indicators = torch.arange(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
        numbers = x[:, :NUMERIC]
        missing = torch.isnan(numbers)
        filled = torch.where(missing, encoder.median, numbers)
        parts = [(filled - encoder.mean) / encoder.scale]
        parts.append(missing[:, : len(self.indicators)].float())
        codes = x[:, NUMERIC:].long()
        for i, levels in enumerate(ONEHOT_LEVELS):
            parts.append(functional.one_hot(codes[:, i], levels).float())
        for i, name in enumerate(encoder.columns.embedding_shapes):
            table = encoder.get_parameter(name)
            parts.append(functional.embedding(codes[:, len(ONEHOT_LEVELS) + i], table))
        return torch.cat(parts, dim=1)


class NanToNum(HandWritten):
    """The shortest hand-written version: ``nan_to_num`` after standardizing, so a
    missing cell takes the mean rather than the median."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
        numbers = x[:, :NUMERIC]
        z = torch.nan_to_num((numbers - encoder.mean) / encoder.scale, nan=0.0)
        parts = [z, torch.isnan(numbers[:, : len(self.indicators)]).float()]
        codes = x[:, NUMERIC:].long()
        for i, levels in enumerate(ONEHOT_LEVELS):
            parts.append(functional.one_hot(codes[:, i], levels).float())
        for i, name in enumerate(encoder.columns.embedding_shapes):
            table = encoder.get_parameter(name)
            parts.append(functional.embedding(codes[:, len(ONEHOT_LEVELS) + i], table))
        return torch.cat(parts, dim=1)


def hand_order(width: int) -> list[int]:
    """For each of the encoder's outputs, the hand-written encoder's position of
    it: each of the first four numbers is followed by its indicator there."""
    order: list[int] = []
    for i in range(NUMERIC):
        order += [i, NUMERIC + i] if i < 4 else [i]
    return order + list(range(NUMERIC + 4, width))


def median_seconds(module: torch.nn.Module, x: torch.Tensor, grad: bool) -> float:
    """The median time of one forward (and backward, with ``grad``)."""

    def step() -> None:
        if grad:
            module(x).sum().backward()
        else:
            with torch.no_grad():
                module(x)

    timer = benchmark.Timer(
        stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
    )
    return float(timer.blocked_autorange(min_run_time=0.2).median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    encoder = TableEncoder(table())
    hand, short = HandWritten(encoder), NanToNum(encoder)
    x = rows(args.rows)
    # The same outputs, in the hand-written order (the indicators after all the
    # numbers; the encoder puts each after its column).
    assert torch.allclose(encoder(x), hand(x)[:, hand_order(encoder.out_features)])
    result: dict[str, object] = {"rows": args.rows, "columns": x.shape[1]}
    result["width"] = encoder.out_features
    result["threads"] = torch.get_num_threads()
    modules = {"encoder": encoder, "hand_written": hand, "nan_to_num": short}
    for grad in (False, True):
        # Interleaved rounds, the best of each: the machine is shared.
        times = dict.fromkeys(modules, math.inf)
        for _ in range(ROUNDS):
            for name, module in modules.items():
                times[name] = min(times[name], median_seconds(module, x, grad))
        key = "forward_backward" if grad else "forward"
        result[key] = {name: round(t * 1e6, 1) for name, t in times.items()}
        result[key + "_ratio"] = {
            "vs_hand_written": round(times["encoder"] / times["hand_written"], 2),
            "vs_nan_to_num": round(times["encoder"] / times["nan_to_num"], 2),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
