"""``data=series``: one time series of yours, a column of a CSV or Parquet file, cut
into windows for forecasting.

Each row is a window of ``window`` consecutive steps, ``[window, 1]`` (a sequence),
and its target is the value ``horizon`` steps after the window's last step: row
``i`` takes ``y[i : i + window]`` and predicts ``y[i + window + horizon - 1]`` (one
model per horizon, the direct strategy). The rows are in time order, and the split
keeps it: the first rows train, the next validate, the last test
(:func:`annfactory.data.split_three`), with the ``horizon - 1`` rows before each
later part left out, so that no training target lies after the start of a
validation or test forecast.

Beside the network, each row carries the seasonal-naive forecast (Hyndman and
Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., section 5.2): the
last value observed one or more whole seasons before the target,
``y[t + h - m * ceil(h / m)]`` for a window ending at ``t``, horizon ``h`` and
season ``m`` (1: the naive forecast, the window's last value). ``task=train``
reports both forecasts' errors on the validation and test rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from annfactory.errors import ConfigError
from annfactory.table_cells import (
    as_text,
    finite_numbers,
    first_non_number,
    reads_as_number,
)
from annfactory.table_fitting import unknown_column
from annfactory.table_reading import check_layout, file_row, read_table

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

__all__ = [
    "MAX_VALUES",
    "Windows",
    "describe",
    "forecast_errors",
    "read_series",
    "seasonal_naive",
    "windows",
]

#: The most values the windows may hold together (rows times window): 2 GB of float64.
MAX_VALUES: Final = 250_000_000


@dataclass(frozen=True)
class Windows:
    """A series cut into rows (:func:`windows`).

    Attributes:
        features: ``[rows, window]``, float64: each row's window.
        target: ``[rows]``: the value ``horizon`` steps after each window.
        naive: ``[rows]``: each row's seasonal-naive forecast of its target.
    """

    features: npt.NDArray[np.float64]
    target: npt.NDArray[np.float64]
    naive: npt.NDArray[np.float64]


def read_series(
    path: Path,
    column: str,
    *,
    delimiter: str = ",",
    key: str = "data",
) -> npt.NDArray[np.float64]:
    """Column ``column`` of the CSV or Parquet file at ``path``, in file order, as
    float64: every cell a finite number.

    Raises:
        ConfigError: The file cannot be read (see :func:`read_table`), has no such
            column (the closest named), or the column holds text, an empty cell or
            a value that is not finite (the message names its row).
    """
    import numpy as np

    table = read_table(path, delimiter=delimiter, key=f"{key}.path")
    check_layout(table, column, f"{key}.path")
    names = list(table.column_names)
    if column not in names:
        raise unknown_column(f"{key}.column", column, names)
    _check_numbers(table, column, f"{key}.column")
    values = finite_numbers(table, column, f"{key}.column")
    missing = np.isnan(values)
    if missing.any():
        index = int(np.argmax(missing))
        row, note = file_row(table, index)
        raise ConfigError(
            f"{key}.column",
            f"column {column!r} has no value in row {row} ({int(missing.sum())} "
            f"empty of {len(values)}): a series needs one at every step.",
            f"Fill the gap in the file, or cut the series there ({note}).",
        )
    return np.ascontiguousarray(values, dtype=np.float64)


def _check_numbers(table: pa.Table, column: str, key: str) -> None:
    """Raise where a cell of the column is not a number (a date, a word)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = table.column(column)
    kind = cells.type
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
    ):
        return
    text = as_text(cells)
    if not pc.any(pc.invert(reads_as_number(text))).as_py():
        return  # text that reads as numbers (quoted, padded)
    index, cell = first_non_number(table, column, text, key)
    row, note = file_row(table, index)
    raise ConfigError(
        key,
        f"column {column!r} holds {cell!r} in row {row}: not a number.",
        f"Name the column of the series' values, or fix the cell ({note}).",
    )


def seasonal_naive(
    series: npt.NDArray[np.float64], window: int, horizon: int, season: int
) -> npt.NDArray[np.float64]:
    """Each window's seasonal-naive forecast of the value ``horizon`` steps after
    it: ``y[t + h - m * ceil(h / m)]`` for the window ending at step ``t``, a
    value inside the window when ``season <= window``."""
    rows = len(series) - window - horizon + 1
    back = season * math.ceil(horizon / season) - horizon  # steps before t
    first = window - 1 - back
    return series[first : first + rows].copy()


def windows(
    series: npt.NDArray[np.float64],
    window: int,
    horizon: int,
    season: int,
    *,
    key: str = "data",
    column: str = "the series",
) -> Windows:
    """``series`` cut into every window of ``window`` steps that has a value
    ``horizon`` steps after it (stride 1, in time order).

    Raises:
        ConfigError: ``season`` is longer than ``window`` (the seasonal-naive
            forecast looks one season back from the window's end), the series is
            too short for one row, or the rows would hold more than
            :data:`MAX_VALUES` values.
    """
    import numpy as np

    steps = len(series)
    if season > window:
        raise ConfigError(
            f"{key}.season",
            f"{season} is longer than {key}.window {window}: the seasonal-naive "
            "forecast takes the value one season before the target, inside the window.",
            f"Use {key}.window={season} or more, or a shorter {key}.season.",
        )
    rows = steps - window - horizon + 1
    if rows < 1:
        raise ConfigError(
            f"{key}.window",
            f"{column} has {steps} steps: a window of {window} and a horizon of "
            f"{horizon} need {window + horizon} or more.",
            f"Use a shorter {key}.window or {key}.horizon, or a longer series.",
        )
    if rows * window > MAX_VALUES:
        raise ConfigError(
            f"{key}.window",
            f"{rows:,} windows of {window} steps hold {rows * window:,} values, more "
            f"than the {MAX_VALUES:,} that data=series keeps in memory.",
            f"Use a shorter {key}.window, or a shorter series.",
        )
    view = np.lib.stride_tricks.sliding_window_view(series, window)[:rows]
    return Windows(
        features=np.ascontiguousarray(view),
        target=series[window + horizon - 1 :].copy(),
        naive=seasonal_naive(series, window, horizon, season),
    )


def describe(
    column: str,
    steps: int,
    rows: int,
    window: int,
    horizon: int,
    season: int,
) -> Sequence[str]:
    """The notes a run prints about the windows and the split."""
    ahead = "the next step" if horizon == 1 else f"the value {horizon} steps ahead"
    notes = [
        f"data=series {column!r}: {steps} steps cut into {rows} windows of {window} "
        f"steps, each forecasting {ahead}; split in time order (train, then "
        "validation, then test), never shuffled",
    ]
    if horizon > 1:
        notes.append(
            f"data=series: the {horizon - 1} windows before the validation rows and "
            "before the test rows are left out, so that no training target lies after "
            "a validation or test forecast's start"
        )
    naive = (
        "naive forecast (the window's last value; data.season=1)"
        if season == 1
        else f"seasonal-naive forecast (season {season})"
    )
    notes.append(
        f"data=series: the {naive} is scored beside the network: val_naive_mae, "
        "test_naive_mae"
    )
    return notes


def forecast_errors(
    split: str,
    truth: npt.NDArray[np.float64],
    forecast: npt.NDArray[np.float64],
    naive: npt.NDArray[np.float64],
) -> dict[str, float]:
    """The network's and the seasonal-naive forecast's mean absolute and root mean
    squared errors on one split's rows, in the target's units: ``<split>_mae``,
    ``<split>_rmse``, ``<split>_naive_mae``, ``<split>_naive_rmse``."""
    import numpy as np

    figures: dict[str, float] = {}
    for name, predicted in (("", forecast), ("naive_", naive)):
        error = np.asarray(predicted, dtype=np.float64) - truth
        figures[f"{split}_{name}mae"] = float(np.mean(np.abs(error)))
        figures[f"{split}_{name}rmse"] = float(np.sqrt(np.mean(error**2)))
    return figures
