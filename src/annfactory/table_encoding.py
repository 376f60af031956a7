"""The table encoder: a network's first layer on a table, from one number per feature
column to the inputs of the layers after it.

:class:`TableEncoder` takes ``[batch, n_features]`` rows as
:mod:`annfactory.columns` describes them (the raw value of a numeric column, NaN
where missing; a categorical column's code, NaN where missing, -1 for a level the
training split did not have) and gives ``[batch, columns.width]`` in column order:

- **numeric**: the value, imputed with the training median where missing, then
  standardized, ``(x - mean) / scale``; then, if the column has an ``indicator``,
  1.0 where the cell was missing and 0.0 elsewhere;
- **categorical, onehot**: ``levels`` inputs (the vocabulary, then the missing level
  if the column has one);
- **categorical, embedding**: a learned table of ``levels`` rows by
  ``embedding_dim(levels)`` columns, one row per code.

It never raises on a value: a numeric cell that is NaN or ±inf is missing; a code is
rounded to the nearest integer (halves to even, as ``torch.round`` and ONNX's
``Round`` do), and one that is negative, NaN without a missing level, ±inf, or
beyond the vocabulary (the missing level's own index included: only NaN reaches
it) gives all zeros, one-hot or embedding, and no gradient reaches any embedding
row for it. Codes must be exact in the module's dtype: up to 2**24 levels in
float32, 2048 in float16, 256 in bfloat16.

The fitted values (``median``, ``mean``, ``scale``) are persistent buffers, saved in
``weights.safetensors`` with the weights and restored by ``load_state_dict``; the
layout (which input goes where) is built from the columns record, which
``spec.yaml`` holds, as non-persistent buffers. The embedding tables are parameters
(``embedding_<i>``, ``i`` the column's position), each drawn from its own seeded
generator, from N(0, 1) as ``torch.nn.Embedding``'s default.

Forward is a handful of tensor operations whatever the number of columns (one more
per embedding column): no loop over rows, no branch on values, so
``torch.export`` and the ONNX exporter take it as it is.
"""

from __future__ import annotations

import math
from typing import Final

import torch
from torch import nn
from torch.nn import functional

from annfactory.columns import Column, TableColumns, embedding_parameter
from annfactory.errors import ConfigError
from annfactory.seeding import sampling_dtype, seeded_generator

__all__ = ["DEFAULT_LAYER_NAME", "TableEncoder"]

#: The layer name whose parameter streams a stand-alone encoder draws from
#: (``encode.embedding_3``), so that it equals the factory's layer of that name.
DEFAULT_LAYER_NAME: Final = "encode"

#: The float buffers and whether the state dict holds them: the fitted values do;
#: the layout is rebuilt from the columns record.
_FLOAT_BUFFERS: Final = {
    "median": True,
    "mean": True,
    "scale": True,
    "vocabulary_size": False,
    "missing_code": False,
    "onehot_level": False,
}
_INDEX_BUFFERS: Final = (
    "numeric_index",
    "indicator_index",
    "categorical_index",
    "onehot_source",
    "embedding_source",
    "output_order",
)


class TableEncoder(nn.Module):
    """Imputation, missing indicators, standardization, one-hot and embeddings of a
    table's feature columns, in one layer (see the module's docstring).

    Args:
        columns: The feature columns and their fitted values.
        seed: The run seed that the embedding tables are drawn from.
        layer_name: The layer's name in the network: each table is drawn from the
            stream ``<layer_name>.embedding_<i>``, as the factory draws a layer's
            parameters (:func:`annfactory.seeding.seeded_generator`).

    Built under ``torch.device("meta")``, it allocates nothing; give it memory with
    ``to_empty`` and call :meth:`reset_running_stats` and :meth:`reset_parameters`.

    Raises:
        ConfigError: A numeric column lacks its fitted values, or an embedding
            column has no level.
    """

    median: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    vocabulary_size: torch.Tensor
    missing_code: torch.Tensor
    onehot_level: torch.Tensor
    numeric_index: torch.Tensor
    indicator_index: torch.Tensor
    categorical_index: torch.Tensor
    onehot_source: torch.Tensor
    embedding_source: torch.Tensor
    output_order: torch.Tensor

    def __init__(
        self,
        columns: TableColumns,
        *,
        seed: int = 0,
        layer_name: str = DEFAULT_LAYER_NAME,
    ) -> None:
        super().__init__()
        self.columns = columns
        self.in_features = len(columns.features)
        self.out_features = columns.width
        self._values, self._runs = _layout(columns)
        for name, persistent in _FLOAT_BUFFERS.items():
            values = torch.tensor(self._values[name], dtype=torch.get_default_dtype())
            self.register_buffer(name, values, persistent=persistent)
        for name in _INDEX_BUFFERS:
            index = torch.tensor(self._values[name], dtype=torch.long)
            self.register_buffer(name, index, persistent=False)
        self._embeddings = tuple(columns.embedding_shapes)
        for name, shape in columns.embedding_shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        order = self._values["output_order"]
        self._in_order = list(order) == list(range(len(order)))
        self._groups = (
            bool(self._values["numeric_index"]),
            bool(self._values["indicator_index"]),
            bool(self._values["onehot_source"]),
            bool(self._embeddings),
        )
        if not self.median.is_meta:
            self.reset_parameters(seed, layer_name)

    def reset_running_stats(self) -> None:
        """Every buffer from the columns record (the factory calls this after it
        gives the buffers memory, as for a batch norm's running statistics)."""
        with torch.no_grad():
            for name, buffer in self.named_buffers():
                buffer.copy_(torch.tensor(self._values[name], dtype=buffer.dtype))

    def reset_parameters(self, seed: int, layer_name: str = DEFAULT_LAYER_NAME) -> None:
        r"""Draw each embedding table from :math:`\mathcal{N}(0, 1)`
        (``torch.nn.Embedding``'s init) with its own generator, seeded from
        ``(seed, "<layer_name>.embedding_<i>")``, on the CPU in the sampling dtype
        (float64 for a float64 table, else float32), then cast: the values the
        factory gives a layer named ``layer_name`` in the table's dtype."""
        with torch.no_grad():
            for name in self._embeddings:
                table = self.get_parameter(name)
                sample = torch.empty(table.shape, dtype=sampling_dtype(table.dtype))
                generator = seeded_generator(seed, f"{layer_name}.{name}")
                nn.init.normal_(sample, 0.0, 1.0, generator=generator)
                table.copy_(sample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in_features]`` rows to ``[..., out_features]`` inputs."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"the table encoder takes {self.in_features} feature columns "
                f"({', '.join(self.columns.names)}), not {x.shape[-1]}"
            )
        x = x.to(self.median.dtype)
        numeric, indicators, onehot, embedding = self._groups
        groups: dict[str, torch.Tensor] = {}
        if numeric:
            value = x.index_select(-1, self.numeric_index)
            # NaN compares false: one pass fewer than torch.isfinite.
            missing = ~(value.abs() < math.inf)
            value = torch.where(missing, self.median, value)
            groups["numeric"] = (value - self.mean) / self.scale
            if indicators:
                # Float before picking columns: index_select is slow on bool.
                missing_x = missing.to(x.dtype)
                groups["indicator"] = missing_x.index_select(-1, self.indicator_index)
        if onehot or embedding:
            code = self._codes(x.index_select(-1, self.categorical_index))
            if onehot:
                level = code.index_select(-1, self.onehot_source)
                groups["onehot"] = (level == self.onehot_level).to(x.dtype)
            if embedding:
                source = code.index_select(-1, self.embedding_source)
                groups.update(self._embedded(source))
        if not groups:
            return x[..., :0]
        parts = list(groups.values())
        joined = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        # Column order (a numeric column's indicator beside it): one index_select,
        # not a slice per run of columns (40 for 20 columns with indicators).
        return joined if self._in_order else joined.index_select(-1, self.output_order)

    def _codes(self, cells: torch.Tensor) -> torch.Tensor:
        """The categorical cells as row numbers of their column (-1: all zeros):
        rounded; NaN to the missing level (or -1); anything else out of range to
        -1."""
        code = torch.round(cells)
        known = (code >= 0) & (code < self.vocabulary_size)
        code = torch.where(known, code, -1.0)
        return torch.where(torch.isnan(cells), self.missing_code, code)

    def _embedded(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each embedding column's row for its code, by table name; zeros where the
        code is -1 (multiplied by 0: no gradient reaches the row it looked up)."""
        keep = (code >= 0).to(code.dtype)
        row = code.clamp(min=0).to(torch.long)
        return {
            name: functional.embedding(row[..., k], self.get_parameter(name))
            * keep[..., k : k + 1]
            for k, name in enumerate(self._embeddings)
        }

    def extra_repr(self) -> str:
        kinds = [_kind(column) for column in self.columns.features]
        counts = ", ".join(
            f"{kind}={kinds.count(kind)}"
            for kind in ("numeric", "onehot", "embedding")
            if kind in kinds
        )
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            counts or "no columns"
        )


def _kind(column: Column) -> str:
    return "numeric" if column.type == "numeric" else str(column.encoding)


Run = tuple[str, int, int]
"""A run of consecutive outputs of one group: ``(group, start, stop)`` in that
group's outputs (``numeric``, ``indicator``, ``onehot``, or an embedding table's
name)."""


def _layout(
    columns: TableColumns,
) -> tuple[dict[str, list[float] | list[int]], tuple[Run, ...]]:
    """The buffers' values, from the record (the numeric columns' fitted values, the
    categorical columns' code ranges, which inputs each group reads), and the runs
    that put the groups' outputs in column order."""
    numeric: list[int] = []
    categorical: list[int] = []
    fitted: dict[str, list[float]] = {"median": [], "mean": [], "scale": []}
    indicator: list[int] = []
    vocabulary_size: list[float] = []
    missing_code: list[float] = []
    onehot_source: list[int] = []
    onehot_level: list[float] = []
    embedding_source: list[int] = []
    runs: list[Run] = []
    for index, column in enumerate(columns.features):
        if column.type == "numeric":
            for name in fitted:
                fitted[name].append(_fitted(column, index, name))
            _extend(runs, "numeric", len(numeric), 1)
            if column.indicator:
                _extend(runs, "indicator", len(indicator), 1)
                indicator.append(len(numeric))
            numeric.append(index)
            continue
        levels = column.levels
        source = len(categorical)
        categorical.append(index)
        vocabulary_size.append(float(len(column.vocabulary)))
        missing_code.append(
            float(len(column.vocabulary)) if column.missing_level else -1
        )
        if column.encoding == "onehot":
            _extend(runs, "onehot", len(onehot_source), levels)
            onehot_source += [source] * levels
            onehot_level += [float(level) for level in range(levels)]
            continue
        if levels == 0:
            raise ConfigError(
                f"data.fitted.columns.features[{index}]",
                f"the embedding of column {column.name!r} has no level.",
                "Train the run again.",
            )
        # Each table's vectors are a group of their own.
        _extend(runs, embedding_parameter(index), 0, column.width)
        embedding_source.append(source)
    # The groups as forward joins them (numeric, indicator, one-hot, then each
    # embedding table in column order), and where each output of the runs is there.
    widths = {"numeric": len(numeric), "indicator": len(indicator)}
    widths["onehot"] = len(onehot_source)
    for group, _, stop in runs:
        if group not in widths:
            widths[group] = stop
    offsets, offset = {}, 0
    for group, width in widths.items():
        offsets[group] = offset
        offset += width
    order = [
        offsets[group] + position
        for group, start, stop in runs
        for position in range(start, stop)
    ]
    values: dict[str, list[float] | list[int]] = {
        **fitted,
        "output_order": order,
        "vocabulary_size": vocabulary_size,
        "missing_code": missing_code,
        "onehot_level": onehot_level,
        "numeric_index": numeric,
        "indicator_index": indicator,
        "categorical_index": categorical,
        "onehot_source": onehot_source,
        "embedding_source": embedding_source,
    }
    return values, tuple(runs)


def _extend(runs: list[Run], group: str, start: int, count: int) -> None:
    """Add ``count`` outputs of ``group`` from ``start`` to the runs: to the last
    run where they continue it."""
    if count == 0:
        return
    if runs and runs[-1][0] == group and runs[-1][2] == start:
        runs[-1] = (group, runs[-1][1], start + count)
    else:
        runs.append((group, start, start + count))


def _fitted(column: Column, index: int, name: str) -> float:
    """A numeric column's fitted value (``median``, ``mean`` or ``scale``)."""
    value = getattr(column, name)
    if value is None:
        raise ConfigError(
            f"data.fitted.columns.features[{index}].{name}",
            f"numeric column {column.name!r} has no fitted {name}.",
            "Fit the columns on the training split first (task=train).",
        )
    return float(value)
