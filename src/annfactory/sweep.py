"""Sweep results: one record per job, and the summary of a whole sweep.

A job of a sweep (``scripts/run.py -m ...``) prints one line (:func:`job_line`) and
writes a :class:`JobRecord`-shaped dict (status, error, wall time, metrics) to
``job.json`` in its directory. Under annfactory's sweepers a job never raises: the
sweeper collects the records, writes ``summary.csv``, ``summary.md`` and
``summary.png`` in the sweep directory (:func:`write_summary`), prints the table, and
fails the sweep (non-zero exit, no traceback) if any job failed. Under any other
sweeper, :class:`SummaryCallback` writes the same files from the ``job.json`` files
when the sweep ends. No torch here; matplotlib only for the picture.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.experimental.callback import Callback
from hydra.plugins.config_source import ConfigSource
from hydra.types import HydraContext, RunMode, TaskFunction
from omegaconf import DictConfig

from annfactory.errors import AnnFactoryError
from annfactory.figures import save_figure
from annfactory.files import write_atomic
from annfactory.sweep_table import (
    JobRecord,
    TableLayout,
    flatten,
    override_cells,
    summary_rows,
    table_layout,
)
from annfactory.sweep_table import cell as _cell

if TYPE_CHECKING:
    from hydra.plugins.launcher import Launcher
    from matplotlib.figure import Figure

__all__ = [
    "ANNFACTORY_SWEEPERS",
    "JOB_FILE",
    "SUMMARY_FIGURE",
    "ComposeOnce",
    "JobRecord",
    "SummaryCallback",
    "SweepFailedError",
    "TableLayout",
    "flatten",
    "job_line",
    "key_metric",
    "launcher_composing_once",
    "override_cells",
    "plot_search",
    "plot_summary",
    "read_job_records",
    "summary_rows",
    "table_layout",
    "write_summary",
    "writes_own_summary",
]

#: A job's record in its directory.
JOB_FILE = "job.json"
#: The picture of a sweep, in the sweep directory.
SUMMARY_FIGURE = "summary.png"
#: The ``_target_`` prefix of annfactory's sweepers (the ``annfactory_sweeper``
#: plugin package): they isolate failed jobs and write the summary themselves.
ANNFACTORY_SWEEPERS = "hydra_plugins.annfactory_sweeper."

#: Columns printed when the table is too wide for a terminal.
_PRINTED_MAX_COLUMNS = 12
#: Width of the "Same in every job" paragraph.
_CONSTANTS_WIDTH = 100


class SweepFailedError(AnnFactoryError):
    """Some jobs of a sweep failed; the summary names them."""


class ComposeOnce(ConfigLoader):
    """Hydra's config loader, through which each job of a sweep is composed once.

    The sweeper composes every job up front (:meth:`compose`, Hydra's public
    ``load_sweep_config``) to find the ones that do not compose; the launcher then
    asks for the same configs again (:meth:`load_sweep_config`) and gets the kept
    ones instead of a second composition. Each kept config is handed out once: the
    launcher writes the job's number into it and Hydra makes it read-only, so two
    jobs with the same overrides (``seed=1,2,1``) each get their own. Everything
    else is the wrapped loader's. Set as the ``config_loader`` of the sweep's
    ``HydraContext``, which the launcher shares.
    """

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        # Per overrides, the configs composed and not yet launched, in job order.
        self.kept: dict[tuple[str, ...], deque[DictConfig]] = {}

    def compose(
        self, master_config: DictConfig, sweep_overrides: Sequence[str]
    ) -> DictConfig:
        """Compose one job's config (raises if it does not compose) and keep it for
        the launcher."""
        config = self.loader.load_sweep_config(master_config, list(sweep_overrides))
        self.kept.setdefault(tuple(sweep_overrides), deque()).append(config)
        return config

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        """The launcher's request: a config kept by :meth:`compose` for these
        overrides, or a freshly composed one when none is left (a relaunch, or a
        launcher's worker process)."""
        key = tuple(sweep_overrides)
        kept = self.kept.get(key)
        if not kept:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        config = kept.popleft()
        if not kept:
            del self.kept[key]
        return config

    def forget(self) -> None:
        """Drop configs kept for jobs that will not be launched."""
        self.kept.clear()

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        return self.loader.load_configuration(
            config_name,
            overrides,
            run_mode,
            from_shell=from_shell,
            validate_sweep_overrides=validate_sweep_overrides,
        )

    def get_search_path(self) -> ConfigSearchPath:
        return self.loader.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        return self.loader.get_group_options(
            group_name, results_filter, config_name, overrides
        )

    def compute_defaults_list(
        self, config_name: str | None, overrides: list[str], run_mode: RunMode
    ) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to worker processes by some launchers (joblib): the loader alone; a
        # worker composes its job itself.
        return {"loader": self.loader, "kept": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.loader = state["loader"]
        self.kept = state["kept"]


def launcher_composing_once(
    hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
) -> tuple[ComposeOnce, HydraContext, Launcher]:
    """A sweeper's set-up: Hydra's context with a :class:`ComposeOnce` as its config
    loader, and the launcher ``config`` names, set up with that context. The
    sweeper composes each job up front through the loader, which hands the
    launcher that same config: each job is composed once.

    Returns:
        The loader, the context and the launcher.
    """
    from hydra.core.plugins import Plugins

    loader = ComposeOnce(hydra_context.config_loader)
    context = HydraContext(config_loader=loader, callbacks=hydra_context.callbacks)
    launcher = Plugins.instance().instantiate_launcher(
        config=config, hydra_context=context, task_function=task_function
    )
    return loader, context, launcher


def write_summary(
    sweep_dir: Path, records: Sequence[JobRecord], *, plot: bool = True
) -> str:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` to ``sweep_dir``;
    return the table to print.

    The CSV has every column, numbers at full precision. ``summary.md`` and the
    returned text list the columns with one value in every job once, above the table
    (``Same in every job: model=demo task=forward ...``), and start the table with the
    columns that vary: the job's number, its varying overrides (one column per key),
    status and error when a job failed, then the varying metrics. The printed table
    has the first 12 of those columns, with a note when there are more.

    Args:
        sweep_dir: The sweep directory.
        records: One record per job, any order.
        plot: Also write ``summary.png`` (:func:`plot_summary`); a search writes its
            own picture instead (:func:`plot_search`).
    """
    columns, rows = summary_rows(records)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    write_atomic(sweep_dir / "summary.csv", buffer.getvalue())
    layout = table_layout(records)
    constants = _constants_text(layout.constants)
    write_atomic(
        sweep_dir / "summary.md",
        constants + _markdown(layout.columns, layout.rows) + "\n",
    )
    if plot:
        from annfactory.sweep_figures import plot_summary

        figure = plot_summary(records)
        if figure is not None:
            save_figure(figure, sweep_dir / SUMMARY_FIGURE, format="png")
    if len(layout.columns) <= _PRINTED_MAX_COLUMNS:
        return constants + _markdown(layout.columns, layout.rows)
    shown = layout.columns[:_PRINTED_MAX_COLUMNS]
    note = (
        f"({len(layout.columns) - len(shown)} more columns in summary.csv and "
        "summary.md)"
    )
    return constants + _markdown(shown, layout.rows) + "\n" + note


def _constants_text(constants: Sequence[str]) -> str:
    """The constant columns as a wrapped paragraph above the table (empty: none)."""
    if not constants:
        return ""
    # Wrapped between items, never inside one (a value may hold spaces).
    lines = ["Same in every job:"]
    for item in (_cell(item) for item in constants):
        if len(lines[-1]) + 2 + len(item) > _CONSTANTS_WIDTH and lines[-1].strip():
            lines.append(item)
        else:
            lines[-1] += ("  " if lines[-1] != "Same in every job:" else " ") + item
    # A blank line before the table: Markdown needs it.
    return "\n".join(lines) + "\n\n"


def key_metric(metrics: Mapping[str, Any]) -> str:
    """A job's headline result for its one line in a sweep, e.g.
    ``total_params=26``, ``verdict=healthy``, ``val_accuracy=0.9611``.

    The first of the task's headline metrics that the job reported, or empty.
    """
    from annfactory.tasks import tasks

    flat = flatten(metrics)
    task = str(metrics.get("task", ""))
    headline = tasks.get(task).metric if task in tasks else ()
    # Any task, a plugin's too, has a size.
    for name in (*headline, "total_params"):
        value = flat.get(name)
        if value is not None:
            return f"{name.rpartition('.')[2]}={_cell(value)}"
    return ""


def job_line(record: JobRecord) -> str:
    """The one line a job of a sweep prints: its number, its overrides, ok or error,
    and its key metric (:func:`key_metric`) or its error message on one line.

    Example: ``#1 model=demo seed=2: ok total_params=26 (0.21 s)``.
    """
    overrides = " ".join(record["overrides"]) or "(no overrides)"
    head = f"#{record['job']} {overrides}:"
    if record["status"] != "ok":
        return f"{head} {record['status']}: {' '.join(str(record['error']).split())}"
    metrics = record["metrics"]
    result = key_metric(metrics)
    if not result and "activations" in metrics:
        result = "activations=" + ",".join(metrics["activations"])
    seconds = f"({record['wall_time_s']:.2f} s)"
    return " ".join(part for part in (head, "ok", result, seconds) if part)


def read_job_records(sweep_dir: Path, since: float | None = None) -> list[JobRecord]:
    """The records (``job.json``) the jobs of a sweep wrote under ``sweep_dir``.

    Args:
        sweep_dir: The sweep directory; job directories may be nested.
        since: Only files written at or after this time (``time.time()``), so that
            a sweep run again into the same directory ignores the earlier one's
            leftovers. For a job number found twice, the newest file wins.
    """
    newest: dict[int, tuple[float, JobRecord]] = {}
    for path in sweep_dir.rglob(JOB_FILE):
        try:
            written = path.stat().st_mtime
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # half-written or gone: not this sweep's
            continue
        if since is not None and written < since:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("job"), int):
            continue
        job = record["job"]
        if job not in newest or newest[job][0] <= written:
            newest[job] = (written, record)  # type: ignore[assignment]
    return [newest[job][1] for job in sorted(newest)]


def plot_search(
    records: Sequence[JobRecord],
    objective: str,
    direction: str,
    sweep_dir: Path | None = None,
    log_scale: Collection[str] | None = None,
) -> Figure:
    """The picture of a search: the optimization history and the objective against
    each searched parameter. See :func:`annfactory.sweep_figures.plot_search`.

    Args:
        records: One record per trial; a trial's number is its ``job``.
        objective: The objective's dotted path into the metrics (``train.val_loss``).
        direction: ``minimize`` or ``maximize``.
        sweep_dir: Where to write it as ``summary.png``; None writes nothing.
        log_scale: The parameters searched on a log scale (``tag(log, ...)``), on
            a log axis; None: those whose values span two decades.
    """
    from annfactory.sweep_figures import plot_search as plot

    figure = plot(records, objective, direction, log_scale)
    if sweep_dir is not None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        save_figure(figure, sweep_dir / SUMMARY_FIGURE, format="png")
    return figure


def plot_summary(records: Sequence[JobRecord]) -> Figure | None:
    """The picture of a sweep (``summary.png``); see
    :func:`annfactory.sweep_figures.plot_summary`."""
    from annfactory.sweep_figures import plot_summary as plot

    return plot(records)


class SummaryCallback(Callback):
    """A Hydra callback: every sweep ends with ``summary.csv``, ``summary.md`` and
    ``summary.png`` in its sweep directory, and the table printed.

    Hydra calls ``on_multirun_end`` when the sweeper returns, whichever sweeper it
    is (``hydra/sweeper=basic``, a third-party one), so their sweeps get the table
    when all their jobs succeed. The rows come from the ``job.json`` files the jobs
    wrote (:func:`annfactory.cli.run_task`): with process launchers the jobs run
    elsewhere, so files, not memory. annfactory's own sweepers write a richer table
    themselves (failed jobs, search results); under them this callback does nothing.
    Registered in ``hydra.callbacks`` of annfactory's config.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Seconds of slack: a file system's clock may round times down.
        self._started = time.time() - 2.0

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if writes_own_summary(config.hydra.sweeper):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        records = read_job_records(sweep_dir, self._started)
        if not records:
            return
        table = write_summary(sweep_dir, records)
        print(f"\nSweep summary ({sweep_dir / 'summary.md'}):\n{table}", flush=True)


def writes_own_summary(sweeper: Any) -> bool:
    """Whether the sweeper of a ``hydra.sweeper`` node is one of annfactory's, which
    record failed jobs and write the summary themselves."""
    target = str(sweeper.get("_target_", "")) if sweeper is not None else ""
    return target.startswith(ANNFACTORY_SWEEPERS)


def _markdown(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    cell = _cell

    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows
    ]
    return "\n".join(lines)
