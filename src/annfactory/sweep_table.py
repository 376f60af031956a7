"""A sweep's table: one :class:`JobRecord` per job, flattened into the columns and
rows of its summary, split into the columns that vary and the ones that do not.

Below both :mod:`annfactory.sweep` (which writes the summary files) and
:mod:`annfactory.sweep_figures` (which draws them), so that neither imports the other
for it. No torch, no matplotlib, no Hydra.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = [
    "FIXED_COLUMNS",
    "JobRecord",
    "TableLayout",
    "cell",
    "flatten",
    "override_cells",
    "summary_rows",
    "table_layout",
]


#: The columns every summary starts with, in order.
FIXED_COLUMNS = (
    "job",
    "overrides",
    "status",
    "error",
    "total_params",
    "output_shape",
    "wall_time_s",
)


class JobRecord(TypedDict):
    """What one job of a sweep reports."""

    job: int
    overrides: list[str]
    status: str  # "ok", "error", or "interrupted" (Ctrl-C)
    error: str | None
    wall_time_s: float
    metrics: dict[str, Any]


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as flat columns: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.

    Lists of scalars become one cell (``[5, 2]``); lists of mappings or lists (a
    training history) are left out; NaN and infinities become empty.
    """
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            # A table (train's per-epoch history) has its own file, not a cell.
            if not any(isinstance(item, Mapping | list | tuple) for item in value):
                flat[name] = json.dumps(list(value))
        elif isinstance(value, float) and not math.isfinite(value):
            flat[name] = None
        else:
            flat[name] = value
    return flat


def summary_rows(
    records: Iterable[JobRecord],
) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of a sweep's summary, jobs in number order.

    Fixed columns come first, then every metric any job recorded, in the order first
    seen. ``total_params`` and ``output_shape`` are taken from the metrics.
    """
    rows: list[dict[str, Any]] = []
    extra: dict[str, None] = {}
    for record in sorted(records, key=lambda r: r["job"]):
        metrics = flatten(record["metrics"])
        row: dict[str, Any] = {
            "job": record["job"],
            "overrides": " ".join(record["overrides"]),
            "status": record["status"],
            "error": record["error"] or "",
            "total_params": metrics.pop("total_params", None),
            "output_shape": metrics.pop("output_shape", None),
            "wall_time_s": round(record["wall_time_s"], 3),
        }
        for key, value in metrics.items():
            extra.setdefault(key, None)
            row[key] = value
        rows.append(row)
    return [*FIXED_COLUMNS, *extra], rows


@dataclass(frozen=True)
class TableLayout:
    """What ``summary.md`` shows: the varying columns, and the constant ones."""

    #: The table's columns: ``job``, the varying overrides' keys, ``status`` and
    #: ``error`` when a job failed, the varying metrics (``wall_time_s`` last).
    columns: list[str]
    #: One dict per job (job order), column -> value; overrides by their key.
    rows: list[dict[str, Any]]
    #: ``name=value`` of each column with one value in every job, in column order:
    #: overrides as given (``model=demo``), then metrics (``task=forward``).
    constants: list[str]
    #: The keys of the overrides that vary, in the order the jobs give them.
    varying_overrides: list[str]
    #: The metric columns that vary, in table order.
    varying_metrics: list[str]


def override_cells(overrides: Iterable[str]) -> dict[str, str]:
    """One job's overrides as key -> value: ``["model.width=32"]`` ->
    ``{"model.width": "32"}``; a deletion (``~key``) has an empty value."""
    cells: dict[str, str] = {}
    for override in overrides:
        key, _, value = override.partition("=")
        cells[key] = value
    return cells


def table_layout(records: Iterable[JobRecord]) -> TableLayout:
    """Split a sweep's columns into the ones that vary and the ones that do not.

    An override varies if any two jobs give it different values, or some job does
    not give it. A metric varies if its jobs report different values, or a job that
    ran does not report it (``train.val_r2`` of the one regression job in a sweep
    over data sets); the empty cells of failed jobs do not count, and a column
    empty in every job is left out (the CSV keeps it). A metric with the same
    values as an override of the same name (``seed``) is shown once, as the
    override.
    """
    records = sorted(records, key=lambda r: r["job"])
    columns, rows = summary_rows(records)
    cells = [override_cells(record["overrides"]) for record in records]
    keys = list(dict.fromkeys(key for job in cells for key in job))
    varying_overrides: list[str] = []
    constants: list[str] = []
    for key in keys:
        values = {job.get(key) for job in cells}
        if len(values) > 1:
            varying_overrides.append(key)
        else:
            constants.append(key if key.startswith("~") else f"{key}={values.pop()}")
    failed = any(row["status"] != "ok" for row in rows)
    varying_metrics: list[str] = []
    for column in columns:
        if column in ("job", "overrides", "status", "error"):
            continue
        if column in varying_overrides and all(
            _same(row.get(column), job.get(column))
            for row, job in zip(rows, cells, strict=True)
        ):
            continue
        present = [row.get(column) for row in rows if row.get(column) is not None]
        if not present:
            continue
        # A job that ran and lacks the column (another data set's metric) differs.
        missing = any(row.get(column) is None for row in rows if row["status"] == "ok")
        if missing or len({_cell_key(value) for value in present}) > 1:
            varying_metrics.append(column)
        else:
            constants.append(f"{column}={cell(present[0])}")
    if not failed:
        constants.insert(len(keys) - len(varying_overrides), "status=ok")
    # The time a job took is the least telling of its numbers: last.
    varying_metrics.sort(key=lambda column: column == "wall_time_s")
    constants = list(dict.fromkeys(constants))
    # A metric named like a varying override, with other values: told apart.
    names = {
        column: f"metrics.{column}" if column in varying_overrides else column
        for column in ("status", "error", *varying_metrics)
    }
    varying_metrics = [names[column] for column in varying_metrics]
    shown = [
        "job",
        *varying_overrides,
        *(("status", "error") if failed else ()),
        *varying_metrics,
    ]
    table_rows = []
    for row, job in zip(rows, cells, strict=True):
        table_row: dict[str, Any] = {"job": row["job"]}
        table_row.update((key, job.get(key)) for key in varying_overrides)
        table_row.update((names[column], row.get(column)) for column in names)
        table_rows.append(table_row)
    return TableLayout(shown, table_rows, constants, varying_overrides, varying_metrics)


def _same(metric: Any, override: str | None) -> bool:
    # A failed job has no metrics: its override alone says the value.
    if metric is None:
        return True
    return str(metric) == override


def _cell_key(value: Any) -> Any:
    # 1 and 1.0 and True are equal in Python; in a table they are different cells.
    return (type(value).__name__, repr(value))


def cell(value: Any) -> str:
    """A value as one table cell: floats to 6 significant digits, on one line."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return " ".join(str(value).split()).replace("|", "\\|")
