"""The cells of a user's table as numbers or text, whatever a column's stored type
(pyarrow reads a column of numbers with a stray space as text), and the first bad
cell of a column named by its row in the file.

The helpers of :mod:`annfactory.table_fitting`, on whole columns with
``pyarrow.compute``; numpy and pyarrow are imported inside the functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError
from annfactory.table_reading import cell_layout_error, file_row

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

__all__ = [
    "NUMBER",
    "as_numbers",
    "as_text",
    "finite_numbers",
    "first_non_number",
    "present_count",
    "reads_as_number",
    "spaces_as_null",
]

#: A number as text: what a numeric column's cells may be (surrounding spaces
#: are trimmed first). ``inf`` and ``nan`` are left out on purpose: they are not
#: values a user types for a measurement.
NUMBER: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def as_numbers(
    table: pa.Table, name: str, key: str = "data.path"
) -> npt.NDArray[np.float64]:
    """Column ``name`` as float64, NaN where the cell is missing; a text column is
    trimmed, then read as numbers (a cell that is not one, in a new file at
    predict time, is an error naming it)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(name)
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    try:
        numbers = pc.cast(spaces_as_null(column) if text else column, "f8")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        index, cell = first_non_number(table, name, as_text(column), key)
        row, note = file_row(table, index)
        raise ConfigError(
            key,
            f"column {name!r} is numeric, but holds {cell!r} in row {row}.",
            "Fix the cell, or add it to the missing markers (data.na_values) "
            f"({note}).",
        ) from None
    return np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)


def finite_numbers(table: pa.Table, name: str, key: str) -> npt.NDArray[np.float64]:
    """Column ``name`` as numbers (:func:`as_numbers`), checked: none is infinite
    or too large for the network's float32 (a missing cell, NaN, is fine)."""
    import numpy as np

    values = as_numbers(table, name, key)
    largest = float(np.finfo(np.float32).max)
    large = np.abs(values) > largest
    if large.any():
        index = int(np.argmax(large))
        row, note = file_row(table, index)
        value = float(values[index])
        if math.isinf(value):
            raise ConfigError(
                key,
                f"column {name!r} holds {value!r} in row {row}: not a finite number.",
                "Fix the cell, or add it to data.na_values if it marks a missing "
                f"value ({note}).",
            )
        raise ConfigError(
            key,
            f"column {name!r} holds {value:g} in row {row}: too large for float32, "
            f"the network's dtype (it holds values within ±{largest:.2g}).",
            f"Rescale the column (e.g. to other units), or fix the cell ({note}).",
        )
    return values


def as_text(column: Any) -> Any:
    """The cells as text, null where missing; booleans as ``False``/``True``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "True", "False")
    if pa.types.is_floating(kind):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column)
    return pc.cast(column, pa.string())


def spaces_as_null(text: Any) -> Any:
    """Text cells trimmed; a cell of spaces only is missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)


def reads_as_number(text: Any) -> Any:
    """True where the cell reads as a number or holds spaces only (missing); null
    where it is missing."""
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(text)
    return pc.or_(pc.match_substring_regex(trimmed, NUMBER), pc.equal(trimmed, ""))


def first_non_number(
    table: pa.Table, name: str, text: Any, key: str
) -> tuple[int, str]:
    """The first cell (0-based row, text) of column ``name`` that is present but
    not a number; raises the file's layout error instead where that explains the
    cell (a NUL character, a quote closed rows later)."""
    import pyarrow.compute as pc

    bad = pc.and_(pc.invert(reads_as_number(text)), pc.is_valid(text))
    index = pc.index(bad, True).as_py()
    cell = str(text[index].as_py())
    layout = cell_layout_error(table, name, index, cell, key)
    if layout is not None:
        raise layout
    return index, cell


def present_count(column: Any) -> int:
    """The number of non-missing cells (NaN is missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        return int(pc.sum(pc.invert(pc.is_nan(column.drop_null()))).as_py() or 0)
    return int(len(column) - column.null_count)
