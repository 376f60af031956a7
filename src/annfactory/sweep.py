"""Sweep results: one record per job, and the summary table of a whole sweep.

A job of a sweep (``scripts/run.py -m ...``) never raises: it returns a
:class:`JobRecord`-shaped dict (status, error, wall time, metrics) and writes it to
``job.json`` in its directory. The annfactory sweeper collects the records, writes
``summary.csv`` and ``summary.md`` in the sweep directory, prints the table, and fails
the sweep (non-zero exit, no traceback) if any job failed. No torch here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from annfactory.errors import AnnFactoryError
from annfactory.files import write_atomic

__all__ = [
    "ComposeOnce",
    "JobRecord",
    "SweepFailedError",
    "flatten",
    "summary_rows",
    "write_summary",
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
#: Columns printed when the table is too wide for a terminal.
_PRINTED_MAX_COLUMNS = 12


class JobRecord(TypedDict):
    """What one job of a sweep reports."""

    job: int
    overrides: list[str]
    status: str  # "ok" or "error"
    error: str | None
    wall_time_s: float
    metrics: dict[str, Any]


class SweepFailedError(AnnFactoryError):
    """Some jobs of a sweep failed; the summary names them."""


class ComposeOnce:
    """Wraps Hydra's config loader so each job's config is composed once per sweep.

    The sweeper composes every job up front (:meth:`compose`) to find the invalid ones;
    the launcher then asks for the same configs again (``load_sweep_config``) and gets
    the kept ones instead of composing them a second time. Each kept config is handed
    out once: the launcher writes the job's number into it and Hydra makes it
    read-only, so two jobs with the same overrides (``seed=1,2,1``) must each get their
    own. Everything else is delegated to the wrapped loader.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        # Per overrides, the configs composed and not yet launched, in job order.
        self._kept: dict[tuple[str, ...], deque[Any]] = {}

    def compose(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """Compose one job's config (raises if it does not compose) and keep it for
        the launcher."""
        config = self.loader.load_sweep_config(master_config, sweep_overrides)
        self._kept.setdefault(tuple(sweep_overrides), deque()).append(config)
        return config

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """The launcher's request: a config kept by :meth:`compose` for these
        overrides, or a freshly composed one when none is left (a relaunch)."""
        key = tuple(sweep_overrides)
        kept = self._kept.get(key)
        if not kept:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        config = kept.popleft()
        if not kept:
            del self._kept[key]
        return config

    def forget(self) -> None:
        """Drop configs kept for jobs that will not be launched."""
        self._kept.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to worker processes by some launchers: the loader, not the kept configs.
        return {"loader": self.loader, "_kept": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


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


def write_summary(sweep_dir: Path, records: Sequence[JobRecord]) -> str:
    """Write ``summary.csv`` and ``summary.md`` to ``sweep_dir``; return the table to
    print (all columns, or the first ones with a note when it is wide)."""
    columns, rows = summary_rows(records)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    write_atomic(sweep_dir / "summary.csv", buffer.getvalue())
    write_atomic(sweep_dir / "summary.md", _markdown(columns, rows) + "\n")
    if len(columns) <= _PRINTED_MAX_COLUMNS:
        return _markdown(columns, rows)
    shown = columns[:_PRINTED_MAX_COLUMNS]
    note = f"({len(columns) - len(shown)} more columns in summary.csv and summary.md)"
    return _markdown(shown, rows) + "\n" + note


def _markdown(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return " ".join(str(value).split()).replace("|", "\\|")

    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows
    ]
    return "\n".join(lines)
