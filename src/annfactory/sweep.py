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

from hydra.experimental.callback import Callback

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
    from matplotlib.figure import Figure
    from omegaconf import DictConfig

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


class ComposeOnce:
    """Wraps Hydra's config loader so each job's config is composed once per sweep,
    and a job that only sets values is not composed at all.

    The sweeper composes every job up front (:meth:`compose`) to find the invalid ones;
    the launcher then asks for the same configs again (``load_sweep_config``) and gets
    the kept ones instead of composing them a second time. Each kept config is handed
    out once: the launcher writes the job's number into it and Hydra makes it
    read-only, so two jobs with the same overrides (``seed=1,2,1``) must each get their
    own. Everything else is delegated to the wrapped loader.

    **Value jobs.** Hydra composes a config in two steps: the group choices among the
    overrides (``model=mlp``) build the defaults list and the merged config; then the
    other overrides (``seed=3``, ``model.width=64``) are applied to it in order, and
    the ``hydra`` node records them. A sweep's jobs usually differ only in the second
    kind. So the first step runs once per distinct set of group choices (Hydra's own
    composition of those choices, kept as a template), and each job is a copy of its
    template with its other overrides applied by Hydra's own function and recorded as
    Hydra records them: the same config, ``hydra`` node included, for about a tenth of
    the time. ``tests/test_sweep_compose.py`` checks that it equals Hydra's composition
    on the pinned Hydra, for the kinds of overrides a sweep has, errors included. Any
    job outside what the path handles (an override of ``hydra.*``, a search path, a
    loader that is not Hydra's) and any job the path fails on is composed by Hydra.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        # Per overrides, the configs composed and not yet launched, in job order.
        self._kept: dict[tuple[str, ...], deque[Any]] = {}
        # Per group choices (in order), Hydra's composition of them alone and its
        # pickle (None where it does not pickle); None in a launcher's worker
        # process (see __getstate__).
        self._templates: dict[tuple[str, ...], tuple[Any, bytes | None]] | None = {}

    def compose(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """Compose one job's config (raises if it does not compose) and keep it for
        the launcher."""
        config = self._compose(master_config, sweep_overrides)
        self._kept.setdefault(tuple(sweep_overrides), deque()).append(config)
        return config

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """The launcher's request: a config kept by :meth:`compose` for these
        overrides, or a freshly composed one when none is left (a relaunch, or a
        launcher's worker process)."""
        key = tuple(sweep_overrides)
        kept = self._kept.get(key)
        if not kept:
            return self._compose(master_config, sweep_overrides)
        config = kept.popleft()
        if not kept:
            del self._kept[key]
        return config

    def forget(self) -> None:
        """Drop configs kept for jobs that will not be launched."""
        self._kept.clear()

    def _compose(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        split = None
        if self._templates is not None:
            split = _split_overrides(self.loader, master_config, sweep_overrides)
        if split is not None:
            choices, values, parsed = split
            try:
                return self._from_template(master_config, choices, values, parsed)
            except Exception:
                # Composed by Hydra below: its error, worded as Hydra words it.
                pass
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def _from_template(
        self,
        master_config: Any,
        choices: tuple[str, ...],
        values: list[Any],
        parsed: list[Any],
    ) -> Any:
        """What ``ConfigLoaderImpl._load_configuration_impl`` does after building the
        config, on a copy of the job's template (its group choices composed)."""
        from hydra._internal.config_loader_impl import (
            ConfigLoaderImpl,
            get_overrides_dirname,
        )
        from omegaconf import OmegaConf

        assert self._templates is not None
        kept = self._templates.get(choices)
        if kept is None:
            template = self.loader.load_sweep_config(master_config, list(choices))
            kept = self._templates[choices] = (template, _pickled(template))
        cfg = _copy(*kept)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        cfg.hydra.overrides.task = [str(override.input_line) for override in parsed]
        naming = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed,
            kv_sep=naming.kv_sep,
            item_sep=naming.item_sep,
            exclude_keys=naming.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to worker processes by some launchers (joblib): the loader alone. A
        # worker gets one job per unpickled copy, so a template would be composed for
        # one job: Hydra composes it directly. (Nor do the configs pickle: Hydra
        # loads plugin modules outside sys.modules, so their dataclasses do not.)
        return {"loader": self.loader, "_kept": {}, "_templates": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _pickled(cfg: Any) -> bytes | None:
    """``cfg`` pickled, or None where it holds something that does not pickle (the
    config class of a plugin loaded outside ``sys.modules``)."""
    import pickle

    try:
        return pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def _copy(cfg: Any, pickled: bytes | None) -> Any:
    """A copy of ``cfg``: from its pickle, several times faster than
    ``copy.deepcopy`` (the same nodes, flags and metadata: OmegaConf pickles them
    all), else ``copy.deepcopy``."""
    import copy
    import pickle

    return copy.deepcopy(cfg) if pickled is None else pickle.loads(pickled)


def _split_overrides(
    loader: Any, master_config: Any, sweep_overrides: Sequence[str]
) -> tuple[tuple[str, ...], list[Any], list[Any]] | None:
    """A job's overrides as Hydra's ``Overrides`` splits them: the group choices (as
    typed, in order), the config overrides (parsed, in order) and all of them parsed;
    None where the template path does not apply.

    It applies where the loader is Hydra's, the primary config adds no search path
    (the loader's repository then has every group the composition sees), no override
    names ``hydra.*`` (Hydra records those apart), and there is something to apply.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not isinstance(loader, ConfigLoaderImpl) or not sweep_overrides:
        return None
    if master_config.hydra.get("searchpath"):
        return None
    parsed = OverridesParser.create().parse_overrides(list(sweep_overrides))
    choices: list[str] = []
    values: list[Any] = []
    for override in parsed:
        if override.is_hydra_override() or override.is_sweep_override():
            return None
        # Hydra's rule (defaults_list.Overrides): a dict, or a key that is no group,
        # is a config override.
        is_group = loader.repository.group_exists(override.key_or_group)
        if is_group and not isinstance(override.value(), dict):
            choices.append(str(override.input_line))
        elif override.package is None:
            values.append(override)
        else:
            return None  # Hydra's "looks like a config group" error, from Hydra
    if not values:
        return None
    return tuple(choices), values, parsed


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
