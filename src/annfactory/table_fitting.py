"""A user's table as a network's inputs: column types, fitted values, codes.

The steps after :func:`annfactory.table_reading.read_table`, each a function the
data set's loader calls in turn:

1. :func:`infer_types`: each feature column's type (``numeric``, ``categorical`` or
   ``ignore``), with ``data.types`` overriding any inference.
2. :func:`fit_columns`: medians, scales and vocabularies from the training rows, as
   the :class:`~annfactory.columns.TableColumns` record that ``spec.yaml`` keeps.
3. :func:`encode_cells`: one float32 number per feature column and row: the raw
   number (NaN where missing), or a category's code.

:func:`target_column` returns the target as numbers or class codes, with the rows
whose target is missing marked.

Everything works on whole columns with ``pyarrow.compute``; no step loops over the
cells in Python. numpy and pyarrow are imported inside the functions, so that
importing annfactory stays cheap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from annfactory.columns import (
    COLUMN_TYPES,
    MISSING_CODE,
    UNSEEN_CODE,
    Column,
    ColumnType,
    TableColumns,
)
from annfactory.errors import ConfigError, UnknownNameError, closest_name
from annfactory.table_cells import (
    NUMBER,
    as_numbers,
    as_text,
    finite_numbers,
    first_non_number,
    present_count,
    reads_as_number,
    spaces_as_null,
)
from annfactory.table_reading import NA_VALUES, check_layout, file_row

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

__all__ = [
    "IDENTIFIER_MIN_ROWS",
    "IDENTIFIER_SHARE",
    "OTHER_LEVEL",
    "TargetColumn",
    "describe_columns",
    "encode_cells",
    "fit_columns",
    "infer_types",
    "na_values_override",
    "target_column",
    "types_override",
    "unknown_column",
]

#: A text column is an identifier (left out) where at least this share of its
#: non-missing cells are distinct ...
IDENTIFIER_SHARE: Final = 0.9
#: ... over more than this many non-missing cells.
IDENTIFIER_MIN_ROWS: Final = 20
#: The level that the rare levels of a categorical column fold into.
OTHER_LEVEL: Final = "<other>"

_DECIMAL_COMMA: Final = r"^[+-]?\d*,\d+$"


# ------------------------------------------------------------------------------------
# Column types
# ------------------------------------------------------------------------------------


def infer_types(
    table: pa.Table,
    *,
    target: str,
    features: Sequence[str] | None,
    types: Mapping[str, str],
    key: str = "data",
    na_values: Sequence[str] = NA_VALUES,
) -> tuple[dict[str, ColumnType], dict[str, str], list[str]]:
    """Each feature column's type, inferred from its cells where ``types`` is silent.

    The rules, on the rows given. Pass the whole table, so that the row a message
    names is the file's; :func:`fit_columns` then leaves out a column that is
    empty in every *training* row (``ignored``: ``empty``).

    - numbers (int, float) are ``numeric``; text and booleans ``categorical``;
    - a text column whose non-missing cells all read as numbers (spaces around
      them allowed) is ``numeric``;
    - a **mixed** column is refused: a text column in which at least half of the
      distinct non-missing values (spaces trimmed) read as numbers, or as numbers
      with a decimal comma (``1,5``), but not all of them read as numbers. A guess
      either way would change the data. The message names the first cell that is
      not a number, its data row (1 is the first row below the header), and the
      two fixes: the override that adds it to ``data.na_values``, or
      ``data.types={<column>: categorical}``. Fewer than half: categorical;
    - an **identifier**, a text column with at least :data:`IDENTIFIER_SHARE` of
      its non-missing cells distinct over more than :data:`IDENTIFIER_MIN_ROWS`,
      is ignored, with a note;
    - a column empty in every row is ignored, with a note.

    ``types`` overrides all of it: ``numeric`` on text reads every cell as a
    number (a cell that is not one is an error naming it); ``categorical`` on
    numbers makes their text the levels (``2007``).

    Args:
        table: The table (:func:`read_table`).
        target: The target column: never a feature.
        features: The feature columns in input order; None: every column but the
            target, in the file's order.
        types: ``data.types``: column name -> ``numeric``, ``categorical`` or
            ``ignore``.
        key: The config path of the data node, for messages.
        na_values: The missing markers the table was read with (for the
            override a message suggests).

    Returns:
        ``(types, ignored, notes)``: every feature column's type in input order
        (``ignore`` for those left out); the columns left out, each with why
        (``ignore``: set in ``data.types``, ``identifier``, ``empty``); the notes to
        print, one line each.

    Raises:
        ConfigError: A name in ``features`` or ``types`` is no column of the table
            (names the closest), a type is unknown, the target is listed as a
            feature, or a column is mixed.
    """
    check_layout(table, target, f"{key}.path")
    names = list(table.column_names)
    if target not in names:
        raise unknown_column(f"{key}.target", target, names)
    if features is None:
        chosen = [name for name in names if name != target]
        if not chosen:
            raise ConfigError(
                f"{key}.features",
                f"the table has no column besides the target {target!r}.",
                "Add the feature columns to the file.",
            )
    else:
        chosen = list(features)
        for name in chosen:
            if name == target:
                raise ConfigError(
                    f"{key}.features",
                    f"lists the target column {target!r}.",
                    "Leave it out: a model must not see what it predicts.",
                )
            if name not in names:
                raise unknown_column(f"{key}.features", name, names)
    for name, kind in types.items():
        if name not in names:
            raise unknown_column(f"{key}.types", name, names)
        if kind not in COLUMN_TYPES:
            raise UnknownNameError(
                f"{key}.types.{name}", "column type", kind, COLUMN_TYPES
            )
    result: dict[str, ColumnType] = {}
    ignored: dict[str, str] = {}
    notes: list[str] = []
    for name in chosen:
        given = types.get(name)
        column = table.column(name)
        kind = _column_type(table, name, given, key, na_values)
        if kind == "ignore":
            ignored[name] = "ignore"
        elif _is_empty(column):
            kind, ignored[name] = "ignore", "empty"
            notes.append(f"note: column {name!r} is empty in every row: left out.")
        elif given is None and kind == "categorical" and _is_identifier(column):
            kind, ignored[name] = "ignore", "identifier"
            keep = types_override(name, "categorical", key)
            notes.append(
                f"note: column {name!r} looks like an identifier (nearly every value "
                f"distinct): left out; {keep} keeps it."
            )
        result[name] = kind  # type: ignore[assignment]
    return result, ignored, notes


def _column_type(
    table: pa.Table, name: str, given: str | None, key: str, na_values: Sequence[str]
) -> str:
    import pyarrow as pa

    column = table.column(name)
    kind = column.type
    if given == "ignore":
        return "ignore"
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
    ):
        return given or "numeric"
    if pa.types.is_boolean(kind):
        return given or "categorical"
    if given == "categorical":
        return "categorical"
    import pyarrow.compute as pc

    text = as_text(column)
    # Distinct values first: the whole column is read again only to name a cell.
    distinct = pc.utf8_trim_whitespace(pc.unique(text.drop_null()))
    distinct = distinct.filter(pc.not_equal(distinct, ""))  # spaces only: missing
    numbers = pc.match_substring_regex(distinct, NUMBER)
    if pc.all(numbers).as_py() is not False:
        return "numeric" if len(distinct) else "categorical"
    if given == "numeric":
        index, cell = first_non_number(table, name, text, f"{key}.path")
        row, note = file_row(table, index)
        raise ConfigError(
            f"{key}.types.{name}",
            f"is numeric, but column {name!r} holds {cell!r} in row {row}.",
            f"Fix the cell, or add it to the missing markers: "
            f"{na_values_override(na_values, cell, key)} ({note}).",
        )
    # Decimal commas count as numbers here: a column of them is refused too.
    numberlike = pc.or_(numbers, pc.match_substring_regex(distinct, _DECIMAL_COMMA))
    if 2 * (pc.sum(numberlike).as_py() or 0) < len(distinct):
        return "categorical"
    index, cell = first_non_number(table, name, text, f"{key}.path")
    row, note = file_row(table, index)
    comma = ""
    if re.fullmatch(_DECIMAL_COMMA, cell.strip()):
        point = cell.strip().replace(",", ".")
        comma = f" (a decimal comma: a number is written {point})"
    raise ConfigError(
        f"{key}.path",
        f"column {name!r} holds numbers, but {cell!r}{comma} in row {row} is not "
        f"one ({note}).",
        f"If it marks a missing value: {na_values_override(na_values, cell, key)}; "
        f"if the column is text: {types_override(name, 'categorical', key)}.",
    )


def na_values_override(na_values: Sequence[str], cell: str, key: str = "data") -> str:
    """The override that adds ``cell`` to the missing markers, quoted so that a
    POSIX shell passes it to Hydra as written:
    ``'data.na_values=["","NA",...,"n/a "]'``."""
    items = [*na_values, cell]
    quoted = ",".join(f'"{_hydra_quoted(item)}"' for item in items)
    override = f"{key}.na_values=[{quoted}]"
    return "'" + override.replace("'", "'\\''") + "'"


def types_override(name: str, kind: str, key: str = "data") -> str:
    """The override that declares column ``name``'s type, quoted for a shell:
    ``'data.types={size: categorical}'``. Hydra's grammar takes only ASCII letters,
    digits and a few marks in a key, so another name gets the config file's
    spelling instead: ``data.types: {"größe": categorical}`` in the run's config."""
    if re.fullmatch(r"[A-Za-z0-9_\-./?]+( [A-Za-z0-9_\-./?]+)*", name):
        return f"'{key}.types={{{name}: {kind}}}'"
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{key}.types: {{{quoted}: {kind}}} in the config file"


def _hydra_quoted(text: str) -> str:
    """``text`` inside Hydra's double quotes: a quote is escaped, and so are the
    backslashes before a quote or at the end (Hydra's grammar); others stay."""
    return re.sub(
        r'(\\*)("|$)',
        lambda match: match.group(1) * 2 + ('\\"' if match.group(2) else ""),
        text,
    )


def _is_identifier(column: Any) -> bool:
    import pyarrow.compute as pc

    present = present_count(column)
    if present <= IDENTIFIER_MIN_ROWS:
        return False
    distinct = pc.count_distinct(column, mode="only_valid").as_py()
    return bool(distinct >= IDENTIFIER_SHARE * present)


def _is_empty(column: Any) -> bool:
    """Every cell is missing (null, or NaN in a float column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count == len(column):
        return True
    if not pa.types.is_floating(column.type):
        return False
    present = column.drop_null()
    # The first value settles it nearly always, without a pass over the column.
    if not math.isnan(present[0].as_py()):
        return False
    return bool(pc.all(pc.is_nan(present)).as_py())


def unknown_column(key: str, name: str, names: Sequence[str]) -> ConfigError:
    """The error for a column ``name`` that the table's header ``names`` lacks:
    the closest name, and the columns (the first 12)."""
    suggestion = closest_name(name, names)
    guess = f" Did you mean {suggestion!r}?" if suggestion else ""
    listed = ", ".join(names[:12]) + (
        f", ... ({len(names)} in all)" if len(names) > 12 else ""
    )
    return ConfigError(
        key, f"no column {name!r} in the table.{guess}", f"Its columns: {listed}."
    )


# ------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------


def fit_columns(
    table: pa.Table,
    types: Mapping[str, str],
    *,
    rows: npt.NDArray[np.integer[Any]],
    max_onehot: int = 16,
    min_frequency: int = 1,
    ignored: Mapping[str, str] | None = None,
    key: str = "data.path",
) -> TableColumns:
    """What the network's first layer needs of each feature column, fitted on the
    training rows.

    - numeric: the median of the non-missing cells; the mean and scale (standard
      deviation; 1.0 where it is 0 or not finite) after the median filled the
      missing cells; ``indicator`` where a cell was missing;
    - categorical: the levels sorted as text; levels seen fewer than
      ``min_frequency`` times fold into :data:`OTHER_LEVEL` (last);
      ``missing_level`` where a cell was missing; ``onehot`` encoding up to
      ``max_onehot`` levels, ``embedding`` above.

    A column empty in every training row is left out (``ignored``: ``empty``).

    Args:
        table: The whole table.
        types: Column -> type, in input order (:func:`infer_types`); ``ignore``
            columns are skipped.
        rows: The training rows' indices (a row listed twice counts once; their
            order does not matter).
        max_onehot: The most levels a one-hot column has.
        min_frequency: The fewest training rows a level needs to keep its own code.
        ignored: The columns :func:`infer_types` left out, and why.
        key: The config path of the file, for messages.

    Raises:
        ConfigError: A numeric cell is infinite or too large for float32 (names
            its row, in the whole table).
    """
    import numpy as np
    import pyarrow as pa

    # A mask, not the indices: filtering reads the columns in order, three times
    # as fast as gathering rows at random.
    training = np.zeros(table.num_rows, dtype=bool)
    training[np.asarray(rows, dtype=np.int64)] = True
    mask = pa.array(training)
    columns: list[Column] = []
    left_out = dict(ignored or {})
    for name, kind in types.items():
        if kind == "ignore":
            left_out.setdefault(name, "ignore")
            continue
        cells = table.column(name)
        column = (
            _fit_numeric(name, finite_numbers(table, name, key)[training])
            if kind == "numeric"
            else _fit_categorical(name, cells.filter(mask), max_onehot, min_frequency)
        )
        if column is None:
            left_out[name] = "empty"
        else:
            columns.append(column)
    return TableColumns(tuple(columns), left_out)


def _fit_numeric(name: str, values: npt.NDArray[np.float64]) -> Column | None:
    import numpy as np

    missing = np.isnan(values)
    if missing.all():
        return None
    median = float(np.median(values[~missing]))
    filled = np.where(missing, median, values)
    mean, std = float(filled.mean()), float(filled.std())
    return Column(
        name=name,
        type="numeric",
        median=median,
        mean=mean,
        scale=std if math.isfinite(std) and std > 0 else 1.0,
        indicator=bool(missing.any()),
    )


def _fit_categorical(
    name: str, cells: Any, max_onehot: int, min_frequency: int
) -> Column | None:
    import pyarrow.compute as pc

    text = as_text(cells)
    counts = pc.value_counts(text.drop_null())
    levels = counts.field("values").to_pylist()
    if not levels:
        return None
    seen = counts.field("counts").to_pylist()
    kept = sorted(
        level for level, n in zip(levels, seen, strict=True) if n >= min_frequency
    )
    folded = sorted(
        level for level, n in zip(levels, seen, strict=True) if n < min_frequency
    )
    other = None
    if folded:
        other = OTHER_LEVEL
        while other in levels:
            other = f"<{other}>"
        kept.append(other)
    missing_level = text.null_count > 0
    total = len(kept) + int(missing_level)
    return Column(
        name=name,
        type="categorical",
        vocabulary=tuple(kept),
        other=other,
        folded=tuple(folded),
        missing_level=missing_level,
        encoding="onehot" if total <= max_onehot else "embedding",
    )


def describe_columns(columns: TableColumns) -> list[str]:
    """The columns as a compact table to print at the start of a run: one line a
    column, the features in input order, then the columns left out.

    Example::

        column          type         fitted
        island          categorical  3 levels, one-hot
        bill_length_mm  numeric      median 44.5, missing -> indicator
        name            ignored      identifier
    """
    rows = [("column", "type", "fitted")]
    for column in columns.features:
        if column.type == "numeric":
            fitted = f"median {column.median:.6g}"
            if column.indicator:
                fitted += ", missing -> indicator"
        else:
            encoding = "one-hot" if column.encoding == "onehot" else "embedding"
            fitted = f"{len(column.vocabulary)} levels, {encoding}"
            if column.folded:
                fitted += f", {len(column.folded)} rare folded into {column.other}"
            if column.missing_level:
                fitted += ", missing -> own level"
        rows.append((column.name, column.type, fitted))
    rows += [(name, "ignored", why) for name, why in columns.ignored.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [
        f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {fitted}".rstrip()
        for name, kind, fitted in rows
    ]


# ------------------------------------------------------------------------------------
# Encoding
# ------------------------------------------------------------------------------------


def encode_cells(
    table: pa.Table, columns: TableColumns, *, key: str = "data.path"
) -> tuple[npt.NDArray[np.float32], dict[str, int]]:
    """The network's input: one number per feature column and row.

    A numeric column gives its raw value (NaN where missing); a categorical column
    the cell's code: its index in the vocabulary, the ``other`` level's code for
    a folded level, :data:`~annfactory.columns.MISSING_CODE` for a missing cell
    and :data:`~annfactory.columns.UNSEEN_CODE` for a level training never had.

    Returns:
        ``(inputs, unseen)``: float32 ``[rows, features]``, C-contiguous; per
        categorical column, how many cells held a level training never had.

    Raises:
        ConfigError: The table lacks a feature column.
    """
    import numpy as np

    names = list(table.column_names)
    for column in columns.features:
        if column.name not in names:
            suggestion = closest_name(column.name, names)
            guess = f" Did you mean {suggestion!r}?" if suggestion else ""
            raise ConfigError(
                key,
                f"the file has no column {column.name!r}, which the run was trained "
                f"on.{guess}",
                f"The run needs the columns: {', '.join(columns.names)}.",
            )
    inputs = np.empty((table.num_rows, len(columns.features)), dtype=np.float32)
    unseen: dict[str, int] = {}
    for index, column in enumerate(columns.features):
        cells = table.column(column.name)
        if column.type == "numeric":
            inputs[:, index] = finite_numbers(table, column.name, key)
        else:
            inputs[:, index], unseen[column.name] = _codes(cells, column)
    return inputs, unseen


def _codes(cells: Any, column: Column) -> tuple[npt.NDArray[np.float32], int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    text = as_text(cells)
    vocabulary = list(column.vocabulary)
    codes = np.arange(len(vocabulary), dtype=np.float32)
    if column.other is not None and column.folded:
        other = vocabulary.index(column.other)
        vocabulary += list(column.folded)
        codes = np.concatenate([codes, np.full(len(column.folded), other, np.float32)])
    if not vocabulary:
        found = np.full(len(text), -1, dtype=np.int64)
    else:
        position = pc.index_in(text, value_set=pa.array(vocabulary, pa.string()))
        found = pc.fill_null(position, -1).to_numpy(zero_copy_only=False)
    missing = text.is_null().to_numpy(zero_copy_only=False)
    result = np.where(found >= 0, codes[np.maximum(found, 0)], np.float32(UNSEEN_CODE))
    result[missing] = MISSING_CODE
    unseen = int(np.count_nonzero((found < 0) & ~missing))
    return result.astype(np.float32, copy=False), unseen


# ------------------------------------------------------------------------------------
# The target
# ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TargetColumn:
    """The target column, one value per row of the table.

    Attributes:
        kind: ``classification`` or ``regression``.
        values: classification: int64 class codes (index in ``class_names``), -1
            where the cell is missing; regression: float64, NaN where missing.
        class_names: classification: the classes, sorted as text (numbers by
            value); regression: None.
        missing: bool, True where the target is missing: the caller drops those
            rows (and says how many).
        notes: Lines to print with the run's other notes (classes that differ only
            in case).
    """

    kind: str
    values: npt.NDArray[Any]
    class_names: tuple[str, ...] | None
    missing: npt.NDArray[np.bool_]
    notes: tuple[str, ...] = ()

    @property
    def missing_count(self) -> int:
        return int(self.missing.sum())


#: A numeric target with at most this many distinct integers (and at least two
#: rows a value) is a classification's labels, as in :mod:`annfactory.data`.
#: More classes than this with fewer than two rows a class is refused.
_MAX_INFERRED_CLASSES: Final = 20


def target_column(
    table: pa.Table,
    target: str,
    *,
    kind: str | None = None,
    class_names: Sequence[str] | None = None,
    training: bool = True,
    key: str = "data.target",
) -> TargetColumn:
    """The target as numbers (regression) or class codes (classification).

    Text labels are trimmed of spaces around them (``" yes"`` is ``yes``); a
    numeric label is named as its number (``1.0`` is ``'1'``) and the classes
    sorted by value.

    Args:
        table: The table.
        target: The target column's name.
        kind: ``classification``, ``regression`` or None: text, booleans and a few
            distinct integers are classes, other numbers a regression.
        class_names: A trained run's classes (evaluate): the codes follow them, and
            a class that is not among them is an error.
        training: The target is to be learned: one class only, a class a row, or
            the same value in every row is an error (evaluate passes False).
        key: The config path of the target, for messages.

    Raises:
        ConfigError: No such column, no value in it, text or a value too large for
            float32 in a regression, a class the run was not trained on; when
            ``training``: one class only, more than 20 classes with fewer than two
            rows a class (key ``data.kind`` where ``kind`` was given), the same
            value in every row of a regression.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    node = key.rsplit(".", 1)[0] if "." in key else "data"
    check_layout(table, target, f"{node}.path")
    names = list(table.column_names)
    if target not in names:
        raise unknown_column(key, target, names)
    cells = table.column(target)
    numeric = pa.types.is_integer(cells.type) or pa.types.is_floating(cells.type)
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        # Spaces around a label are a slip; a label of spaces only is no label.
        # The distinct labels tell whether any has them, at a tenth of the cost.
        labels = pc.unique(cells)
        if pc.any(pc.not_equal(pc.utf8_trim_whitespace(labels), labels)).as_py():
            # `1, "yes"`: the space before the quote keeps the quotes in the cell
            # (as in pandas); the label is `yes`.
            cells = pc.replace_substring_regex(
                spaces_as_null(cells), pattern=r'^"(.*)"$', replacement=r"\1"
            )
            table = table.set_column(names.index(target), target, cells)
    present = present_count(cells)
    if present == 0:
        raise ConfigError(
            key,
            f"column {target!r} has no values: every cell is missing.",
            "Choose a target column that holds values.",
        )
    given_kind = kind
    if kind is None and class_names is not None:
        kind = "classification"
    if kind is None:
        kind = "classification"
        if numeric:
            numbers = as_numbers(table, target, key)
            distinct = np.unique(numbers[~np.isnan(numbers)])
            integers = bool(np.all(distinct == np.round(distinct)))
            few = (
                len(distinct) <= _MAX_INFERRED_CLASSES and 2 * len(distinct) <= present
            )
            kind = "classification" if integers and few else "regression"
    if kind == "regression":
        return _regression_target(table, target, key, training)
    text = as_text(cells)
    missing = text.is_null().to_numpy(zero_copy_only=False)
    notes: tuple[str, ...] = ()
    if class_names is None:
        levels = pc.unique(text.drop_null()).to_pylist()
        class_names = tuple(sorted(levels, key=float) if numeric else sorted(levels))
        if training:
            _check_classes(class_names, target, present, numeric, given_kind, key)
            notes = _case_variants(class_names, target, key)
    position = pc.index_in(text, value_set=pa.array(list(class_names), pa.string()))
    codes = pc.fill_null(position, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    unknown = (codes < 0) & ~missing
    if unknown.any():
        index = int(np.argmax(unknown))
        row, note = file_row(table, index)
        raise ConfigError(
            key,
            f"column {target!r} holds the class {text[index].as_py()!r} in row "
            f"{row}, which the run was not trained on ({note}).",
            f"Its classes: {', '.join(class_names)}.",
        )
    return TargetColumn("classification", codes, tuple(class_names), missing, notes)


def _regression_target(
    table: pa.Table, target: str, key: str, training: bool
) -> TargetColumn:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = table.column(target)
    if not (pa.types.is_integer(cells.type) or pa.types.is_floating(cells.type)):
        text = as_text(cells)
        if pc.all(reads_as_number(text.drop_null())).as_py() is False:
            index, cell = first_non_number(table, target, text, key)
            row, note = file_row(table, index)
            raise ConfigError(
                key,
                f"column {target!r} holds {cell!r} in row {row}: not a number, and "
                "data.kind is regression.",
                "Set data.kind=classification for a column of class labels, or fix "
                f"the cell ({note}).",
            )
    values = finite_numbers(table, target, key)
    missing = np.isnan(values)
    present = values[~missing]
    if training and len(present) and float(np.ptp(present)) == 0:
        raise ConfigError(
            key,
            f"column {target!r} holds the same value in every row ({present[0]:g}): "
            "there is nothing to predict.",
            "Choose a target column whose values vary.",
        )
    return TargetColumn("regression", values, None, missing)


def _check_classes(
    class_names: Sequence[str],
    target: str,
    rows: int,
    numeric: bool,
    given_kind: str | None,
    key: str,
) -> None:
    """Raise where the classes cannot be learned: one class only, or more than
    :data:`_MAX_INFERRED_CLASSES` with fewer than two rows a class (a continuous
    target given as classes, or an identifier)."""
    if len(class_names) < 2:
        raise ConfigError(
            key,
            f"column {target!r} holds one class only ({class_names[0]!r}); a "
            "classification needs at least two.",
            "Choose a target column with at least two different values.",
        )
    if len(class_names) > _MAX_INFERRED_CLASSES and 2 * len(class_names) > rows:
        given = given_kind == "classification"
        kind_key = (key.rsplit(".", 1)[0] if "." in key else "data") + ".kind"
        raise ConfigError(
            kind_key if given else key,
            ("is classification, but " if given else "")
            + f"target column {target!r} has {len(class_names)} distinct values in "
            f"{rows} rows: fewer than two rows a class.",
            "Set data.kind=regression (or leave it out: it is inferred), or choose "
            "a column of class labels."
            if numeric
            else "Choose a column of class labels.",
        )


def _case_variants(
    class_names: Sequence[str], target: str, key: str
) -> tuple[str, ...]:
    """A note naming the classes that differ only in case (``yes``, ``Yes``): they
    stay apart, and are most often one class typed two ways."""
    by_folded: dict[str, list[str]] = {}
    for name in class_names:
        by_folded.setdefault(name.casefold(), []).append(name)
    variants = [sorted(names) for names in by_folded.values() if len(names) > 1]
    if not variants:
        return ()
    listed = ", ".join(" and ".join(map(repr, names)) for names in variants)
    return (
        f"note: {key}: column {target!r} has classes that differ only in case, kept "
        f"apart: {listed}. Fix the cells if they are one class.",
    )
