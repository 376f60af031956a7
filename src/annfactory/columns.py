"""The columns of a user's table, as a trained run records them: each feature
column's type and what training fitted for it (plain data, no arrays, no torch).

A network trained on a table takes one number per feature column, in
:attr:`TableColumns.features` order:

- a **numeric** column: its raw value, NaN where the cell is missing;
- a **categorical** column: the cell's code, its index in the column's
  ``vocabulary``; :data:`MISSING_CODE` where the cell is missing and
  :data:`UNSEEN_CODE` for a level the training split never had (or had fewer than
  ``min_frequency`` times, where no ``other`` level took it).

The network's first layer (:mod:`annfactory.table_encoding`) turns that row into
the inputs of the layers after it: a numeric column is imputed with its training
median, followed by a missing-indicator input where the training split had missing
cells, and standardized; a categorical column becomes one-hot inputs or a learned
embedding. Only the text-to-code lookup happens outside the network
(:func:`encode_cells`).

``spec.yaml`` records these columns (``data.fitted.columns``), so a saved run turns
new files into network inputs without its training file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from annfactory.errors import ConfigError

__all__ = [
    "COLUMN_TYPES",
    "EMBEDDING_MAX_DIM",
    "MISSING_CODE",
    "UNSEEN_CODE",
    "Column",
    "ColumnType",
    "TableColumns",
    "embedding_dim",
    "embedding_parameter",
]

ColumnType = Literal["numeric", "categorical", "ignore"]
#: The types a feature column may have (``data.types``).
COLUMN_TYPES: Final[tuple[ColumnType, ...]] = ("numeric", "categorical", "ignore")
#: The code of a missing cell of a categorical column (NaN, as for a numeric one).
MISSING_CODE: Final = math.nan
#: The code of a level the training split did not have.
UNSEEN_CODE: Final = -1.0
#: The largest embedding: ``min(50, (levels + 1) // 2)`` (pytorch_tabular's rule).
EMBEDDING_MAX_DIM: Final = 50


def embedding_dim(levels: int) -> int:
    """The dimension of a learned embedding of ``levels`` levels."""
    return max(1, min(EMBEDDING_MAX_DIM, (levels + 1) // 2))


def embedding_parameter(index: int) -> str:
    """The name of the encoder's learned table for the feature column at ``index``
    (its position in :attr:`TableColumns.features`): ``embedding_<index>``."""
    return f"embedding_{index}"


@dataclass(frozen=True)
class Column:
    """One feature column and what training fitted for it.

    Attributes:
        name: The column's name in the file.
        type: ``numeric`` or ``categorical`` (an ``ignore``\\ d column is not a
            feature and has no :class:`Column`).
        median: numeric: the training split's median, which fills a missing cell.
        mean, scale: numeric: the standardization, fitted on the training split
            (after the median filled its missing cells); ``scale`` is never 0.
        indicator: numeric: the training split had missing cells here, so the
            network has one more input, 1 where the cell is missing.
        vocabulary: categorical: the levels, in code order (sorted as text; the
            ``other`` level, if any, last).
        other: categorical: the name of the level that the rare levels
            (fewer than ``min_frequency`` training rows) fold into; None if none did.
        folded: categorical: the rare levels folded into ``other``.
        missing_level: categorical: the training split had missing cells here, so a
            missing cell is a level of its own (its own one-hot input, or its own
            embedding row); otherwise it is treated like an unseen level.
        encoding: categorical: ``onehot`` (up to ``max_onehot`` levels) or
            ``embedding``.
    """

    name: str
    type: ColumnType
    median: float | None = None
    mean: float | None = None
    scale: float | None = None
    indicator: bool = False
    vocabulary: tuple[str, ...] = ()
    other: str | None = None
    folded: tuple[str, ...] = ()
    missing_level: bool = False
    encoding: Literal["onehot", "embedding"] | None = None

    @property
    def levels(self) -> int:
        """categorical: the levels a cell can take in the network: the vocabulary,
        and the missing level where there is one."""
        return len(self.vocabulary) + int(self.missing_level)

    @property
    def width(self) -> int:
        """How many inputs this column gives the layers after the encoding."""
        if self.type == "numeric":
            return 1 + int(self.indicator)
        if self.encoding == "onehot":
            return self.levels
        return embedding_dim(self.levels)

    def to_dict(self) -> dict[str, Any]:
        """The column as ``spec.yaml`` records it (only the keys of its type)."""
        node: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "numeric":
            node |= {
                "median": self.median,
                "mean": self.mean,
                "scale": self.scale,
                "indicator": self.indicator,
            }
        else:
            node |= {
                "encoding": self.encoding,
                "vocabulary": list(self.vocabulary),
                "missing_level": self.missing_level,
            }
            if self.other is not None:
                node |= {"other": self.other, "folded": list(self.folded)}
        return node

    @classmethod
    def from_dict(cls, node: Mapping[str, Any], key: str) -> Column:
        """A column from its ``spec.yaml`` record; ``key`` is its config path.

        Raises:
            ConfigError: A key is missing or has the wrong type.
        """
        kind = node.get("type")
        if kind not in ("numeric", "categorical"):
            raise ConfigError(
                f"{key}.type",
                f"{kind!r} is not a column type of a trained run.",
                "Use numeric or categorical.",
            )
        name = _text(node.get("name"), f"{key}.name")
        if kind == "numeric":
            return cls(
                name=name,
                type="numeric",
                median=_number(node.get("median"), f"{key}.median"),
                mean=_number(node.get("mean"), f"{key}.mean"),
                scale=_number(node.get("scale"), f"{key}.scale", positive=True),
                indicator=_flag(node.get("indicator", False), f"{key}.indicator"),
            )
        encoding = node.get("encoding")
        if encoding not in ("onehot", "embedding"):
            raise ConfigError(
                f"{key}.encoding",
                f"{encoding!r} is not an encoding.",
                "Use onehot or embedding.",
            )
        vocabulary = node.get("vocabulary")
        if not isinstance(vocabulary, Sequence) or isinstance(vocabulary, str):
            raise ConfigError(
                f"{key}.vocabulary", f"{vocabulary!r} is not a list.", "Give a list."
            )
        other = node.get("other")
        return cls(
            name=name,
            type="categorical",
            vocabulary=tuple(
                _text(level, f"{key}.vocabulary[{i}]")
                for i, level in enumerate(vocabulary)
            ),
            other=None if other is None else _text(other, f"{key}.other"),
            folded=tuple(str(level) for level in node.get("folded", ()) or ()),
            missing_level=_flag(
                node.get("missing_level", False), f"{key}.missing_level"
            ),
            encoding=encoding,
        )


@dataclass(frozen=True)
class TableColumns:
    """The feature columns of a table, in the network's input order.

    Attributes:
        features: The feature columns.
        ignored: Columns of the file left out, each with why (``identifier``,
            ``empty``, ``ignore``: set by ``data.types``).
    """

    features: tuple[Column, ...]
    ignored: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.features)

    @property
    def width(self) -> int:
        """The number of inputs after the encoding: the first layer's
        ``in_features``."""
        return sum(column.width for column in self.features)

    @property
    def embedding_shapes(self) -> dict[str, tuple[int, int]]:
        """The encoder's learned parameters, pure (no torch): for each embedding
        column, :func:`embedding_parameter` of its position -> ``(levels,
        embedding_dim(levels))``, in column order."""
        return {
            embedding_parameter(index): (column.levels, column.width)
            for index, column in enumerate(self.features)
            if column.type == "categorical" and column.encoding == "embedding"
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [column.to_dict() for column in self.features],
            "ignored": dict(self.ignored),
        }

    @classmethod
    def from_dict(cls, node: Any, key: str) -> TableColumns:
        if not isinstance(node, Mapping) or not isinstance(
            node.get("features"), Sequence
        ):
            raise ConfigError(
                key,
                "is not the record of a table's columns.",
                "It is written by task=train; train the run again.",
            )
        features = tuple(
            Column.from_dict(column, f"{key}.features[{i}]")
            if isinstance(column, Mapping)
            else _not_a_column(column, f"{key}.features[{i}]")
            for i, column in enumerate(node["features"])
        )
        ignored = node.get("ignored") or {}
        return cls(features, {str(k): str(v) for k, v in dict(ignored).items()})


def _not_a_column(value: Any, key: str) -> Column:
    raise ConfigError(key, f"{value!r} is not a column record.", "Train the run again.")


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"{value!r} is not text.", "Train the run again.")
    return value


def _number(value: Any, key: str, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        what = "a positive number" if positive else "a finite number"
        raise ConfigError(key, f"{value!r} is not {what}.", "Train the run again.")
    return float(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            key, f"{value!r} is not true or false.", "Train the run again."
        )
    return value
