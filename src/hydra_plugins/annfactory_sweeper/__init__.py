"""annfactory's Hydra sweeper: Hydra's basic sweep with fault isolation and a summary.

Selected by annfactory's config (``hydra/sweeper: annfactory``). It subclasses Hydra's
public ``Sweeper`` interface and runs the jobs Hydra's basic sweeper would (the
cartesian product of the swept values, in the same order, with the same numbers and
batches), through whichever launcher is configured. Differences from the basic
sweeper:

- A job whose overrides do not compose is recorded as a failed row with a clear
  message; the other jobs still run, with their usual job numbers.
- Jobs report a record instead of raising (see ``annfactory.cli.run_task``), so one bad
  job never stops a batch, whatever the launcher.
- At the end, ``summary.csv``, ``summary.md`` and ``summary.png`` are written to the
  sweep directory and the table is printed; if any job failed, the sweep exits
  non-zero without a traceback.
- A sweep with no job (an empty ``range``, a ``glob`` matching nothing) is refused
  before anything runs, and so is a swept ``interval()`` (a search samples it:
  ``hydra/sweeper=optuna``), with a message instead of a traceback;
  ``hydra.sweeper.params`` is accepted from the command line.
- Each job is composed once (``annfactory.sweep.ComposeOnce``): up front, to find the
  jobs that do not compose, and the launcher is handed that config.
- Ctrl-C writes the summary of the jobs that finished, the running one marked
  ``interrupted``, and exits with status 130.

Kept light: Hydra imports every plugin module at start-up, so annfactory is imported
only when a sweep runs.
"""

# No "from __future__ import annotations": Hydra loads plugin modules without
# registering them in sys.modules, and OmegaConf needs real types on the dataclass.
import contextlib
import io
import itertools
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_plugins.annfactory_sweeper._conf import AnnFactorySweeperConf

if TYPE_CHECKING:
    from annfactory.sweep import ComposeOnce

log = logging.getLogger(__name__)


__all__ = [
    "AnnFactorySweeper",
    "AnnFactorySweeperConf",
    "check_not_empty",
    "interrupted_records",
    "job_batches",
    "sweeper_params",
]


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="annfactory",
    node=AnnFactorySweeperConf,
    provider="annfactory",
)


class AnnFactorySweeper(Sweeper):
    """Hydra's basic sweep, with failed jobs recorded and a summary at the end."""

    def __init__(
        self,
        max_batch_size: Optional[int] = None,  # noqa: UP045 (Hydra's signature)
        params: Any = None,
    ) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = params
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None
        self.loader: ComposeOnce | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        from annfactory.sweep import launcher_composing_once

        self.config = config
        # Each job is composed once: up front by the sweeper, through
        # self.loader, which hands the launcher that config.
        self.loader, self.hydra_context, self.launcher = launcher_composing_once(
            hydra_context, task_function, config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from annfactory.hydra_report import reported

        # annfactory's errors reach Hydra as its compact errors: no traceback.
        return reported(self._sweep)(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        from annfactory.sweep import write_summary

        assert self.config is not None
        assert self.launcher is not None
        assert self.loader is not None
        loader = self.loader
        params = sweeper_params(self.params)
        params_conf = [f"{key}={value}" for key, value in params.items()]
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=loader)
        parsed = parser.parse_overrides(params_conf)
        check_not_empty(parsed, loader)
        batches = job_batches(parsed, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        records: list[Any] = []
        returns: list[Sequence[JobReturn]] = []
        first_job = 0
        launched: dict[int, Sequence[str]] = {}
        started = time.time() - 2.0  # a file system's clock may round down
        try:
            for batch in batches:
                failed = self._invalid_jobs(loader, batch, first_job)
                records.extend(failed.values())
                for start, jobs in _runs_of_valid_jobs(batch, first_job, failed):
                    launched.update(enumerate(jobs, start=start))
                    try:
                        results = self.launcher.launch(jobs, initial_job_idx=start)
                    except Exception as error:  # the launcher (no srun, sbatch...)
                        message = f"{type(self.launcher).__name__} failed: {error}"
                        log.error(message)
                        records.extend(
                            _error_record(start + index, overrides, message)
                            for index, overrides in enumerate(jobs)
                        )
                        continue
                    returns.append(results)
                    records.extend(
                        _record_of(result, start + index, jobs[index])
                        for index, result in enumerate(results)
                    )
                loader.forget()
                first_job += len(batch)
        except KeyboardInterrupt:
            records = interrupted_records(records, launched, sweep_dir, started)
            table = write_summary(sweep_dir, records)
            print(f"\nSweep summary ({sweep_dir / 'summary.md'}):\n{table}", flush=True)
            total = sum(len(batch) for batch in batches)
            _exit_interrupted(records, total, "job", sweep_dir / "summary.md")

        records.sort(key=lambda record: record["job"])
        table = write_summary(sweep_dir, records)
        print(f"\nSweep summary ({sweep_dir / 'summary.md'}):\n{table}", flush=True)
        _raise_for_failures(records, "job", sweep_dir / "summary.md")
        return returns

    def _invalid_jobs(
        self, loader: "ComposeOnce", batch: Sequence[Sequence[str]], first_job: int
    ) -> dict[int, Any]:
        """Compose each job's config up front (as the basic sweeper does) and keep it
        for the launcher (``loader`` is the sweep's ``ComposeOnce``); record the ones
        that fail instead of stopping the sweep."""
        from annfactory.sweep import job_line

        assert self.config is not None
        failed: dict[int, Any] = {}
        for index, overrides in enumerate(batch):
            try:
                loader.compose(self.config, list(overrides))
            except Exception as error:
                message = _compose_message(error, overrides)
                job = first_job + index
                failed[job] = _error_record(job, overrides, message)
                print(job_line(failed[job]), flush=True)  # as a job that ran
        return failed


def sweeper_params(params: Any, where: str = "hydra.sweeper.params") -> dict[str, str]:
    """``hydra.sweeper.params`` as override key -> value text.

    The command line's mapping (``hydra.sweeper.params={model.width:
    "choice(16,32)"}``) or a config file's; nested mappings join their keys with
    dots (``{model: {width: ...}}`` is ``model.width``).

    Raises:
        ConfigError: A value that is not a mapping, or an entry that is not a
            single value (a list).
    """
    from annfactory.errors import ConfigError

    if isinstance(params, DictConfig | ListConfig):
        params = OmegaConf.to_container(params, resolve=True)
    if params is None:
        return {}
    example = 'e.g. hydra.sweeper.params={model.width: "choice(16,32)"}'
    if not isinstance(params, Mapping):
        raise ConfigError(
            where, f"{params!r} is not a mapping of keys to values.", f"Give {example}."
        )
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            nested = sweeper_params(value, f"{where}.{key}")
            flat.update((f"{key}.{inner}", text) for inner, text in nested.items())
        elif isinstance(value, bool):
            flat[str(key)] = "true" if value else "false"
        elif value is None or isinstance(value, str | int | float):
            flat[str(key)] = "null" if value is None else str(value)
        else:
            raise ConfigError(
                f"{where}.{key}",
                f"{value!r} is not one override value.",
                f"Give it as text, {example}.",
            )
    return flat


def job_batches(
    overrides: Sequence[Override], max_batch_size: int | None
) -> list[list[list[str]]]:
    """The jobs of a sweep, in batches of at most ``max_batch_size`` (None: one
    batch), as Hydra's basic sweeper makes them.

    Each key's values in the order given (a swept key's through Hydra's
    ``sweep_string_iterator``; a key given twice keeps its first place and its last
    value), and the jobs their cartesian product, the first key varying slowest:
    ``a=1,2 b=x,y`` gives ``a=1 b=x``, ``a=1 b=y``, ``a=2 b=x``, ``a=2 b=y``.

    Raises:
        ConfigError: A sweep of a kind that cannot be listed (``interval()``, which
            a search samples), or a batch size below 1.
    """
    from annfactory.errors import ConfigError

    values: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            values[key] = [f"{key}={val}" for val in override.sweep_string_iterator()]
        else:
            raise ConfigError(
                key,
                f"{override.input_line or key!r} is a range to search, not values to "
                "list: the sweep cannot run it.",
                "List values (a,b,c or range(start,stop)), or search it with "
                "hydra/sweeper=optuna.",
            )
    if max_batch_size is not None and max_batch_size < 1:
        raise ConfigError(
            "hydra.sweeper.max_batch_size",
            f"{max_batch_size} is not a batch size.",
            "Give a whole number of jobs above 0, or null for one batch.",
        )
    jobs = [list(job) for job in itertools.product(*values.values())]
    if max_batch_size is None:
        return [jobs]
    return [jobs[i : i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]


def check_not_empty(overrides: Sequence[Override], loader: Any) -> None:
    """Refuse a sweep with no job: a swept value that gives no value at all.

    Args:
        overrides: The sweep's overrides, parsed by Hydra (with ``loader``, so that
            a ``glob`` lists its group's options).
        loader: Hydra's config loader, for the options of a globbed group.

    Raises:
        ConfigError: An empty ``range`` (Hydra's excludes its end) or a ``glob``
            that matches no option (names the options there are).
    """
    from annfactory.errors import ConfigError

    for override in overrides:
        if not override.is_sweep_override() or not override.is_discrete_sweep():
            continue
        if list(override.sweep_string_iterator()):
            continue
        key = override.get_key_element()
        text = override.input_line or key
        value = override.value()
        if isinstance(value, Glob):
            options = loader.get_group_options(override.key_or_group)
            raise ConfigError(
                key,
                f"{text!r} matches no option, so the sweep has no job.",
                f"Its options: {', '.join(options)}."
                if options
                else f"glob() sweeps the options of a config group; {key} is none.",
            )
        raise ConfigError(
            key,
            f"{text!r} gives no value (Hydra's range excludes its end), so the "
            "sweep has no job.",
            "Give range(start,stop) with stop beyond start, e.g. range(1,6) for 1..5.",
        )


def _compose_message(error: Exception, overrides: Sequence[str]) -> str:
    """A job's composition error, as annfactory's checks word it (with the closest
    valid name) when they catch it, else Hydra's, re-rendered."""
    from annfactory.config import check_overrides, rerender
    from annfactory.errors import ConfigError

    try:
        check_overrides(list(overrides))
    except ConfigError as ours:
        return str(ours)
    return str(rerender(error))


def interrupted_records(
    records: Sequence[Any],
    launched: Mapping[int, Sequence[str]],
    sweep_dir: Path,
    since: float,
) -> list[Any]:
    """The rows of a sweep stopped by Ctrl-C, in job order: the records collected,
    those the launched jobs wrote (``job.json``) before the launcher could hand
    them back, and an ``interrupted`` row for the job that was running if it wrote
    none. Jobs never started have no row.

    Args:
        records: The records the sweeper collected.
        launched: Job number -> overrides, of every job handed to the launcher.
        sweep_dir: Where the jobs write their records.
        since: When the sweep started (``time.time()``): older records are not
            this sweep's.
    """
    from annfactory.sweep import read_job_records

    rows = {record["job"]: record for record in records}
    for record in read_job_records(sweep_dir, since):
        if record["job"] in launched and record["job"] not in rows:
            rows[record["job"]] = record
    if not any(row["status"] == "interrupted" for row in rows.values()):
        waiting = [job for job in sorted(launched) if job not in rows]
        if waiting:  # the job ran in this process and was stopped before its record
            job = waiting[0]
            rows[job] = _error_record(job, launched[job], "stopped by Ctrl-C")
            rows[job]["status"] = "interrupted"
    return [rows[job] for job in sorted(rows)]


def _exit_interrupted(
    records: Sequence[Any], total: int, noun: str, summary: Path
) -> NoReturn:
    """End a sweep stopped by Ctrl-C: say what ran and where its summary is, and
    exit with status 130 (the shell's code for Ctrl-C), without a traceback."""
    stopped = [str(r["job"]) for r in records if r["status"] == "interrupted"]
    finished = len(records) - len(stopped)
    left = total - len(records)
    message = (
        f"Interrupted (Ctrl-C): {finished} of {total} {noun}s finished"
        + (f", {noun} {', '.join(stopped)} stopped" if stopped else "")
        + (f", {left} not started" if left > 0 else "")
        + f"; see {summary}"
    )
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(130)


def _raise_for_failures(
    records: Sequence[Any], noun: str, summary: Path, note: str = ""
) -> None:
    """End a sweep whose jobs (or trials: ``noun``) failed with a
    ``SweepFailedError`` naming them: a non-zero exit without a traceback."""
    from annfactory.sweep import SweepFailedError

    errors = [record for record in records if record["status"] != "ok"]
    if errors:
        numbers = ", ".join(str(record["job"]) for record in errors)
        raise SweepFailedError(
            f"{len(errors)} of {len(records)} {noun}s failed ({noun}s {numbers})"
            f"{note}; see {summary}"
        )


def _consecutive(
    jobs: Iterable[tuple[int, Sequence[str]]],
) -> list[tuple[int, list[Sequence[str]]]]:
    """Numbered jobs in runs of consecutive numbers, each run launched at once, so
    that each job keeps its number (and run directory) whatever was left out or
    taken by another process in between."""
    runs: list[tuple[int, list[Sequence[str]]]] = []
    for number, overrides in sorted(jobs, key=lambda job: job[0]):
        if runs and runs[-1][0] + len(runs[-1][1]) == number:
            runs[-1][1].append(overrides)
        else:
            runs.append((number, [overrides]))
    return runs


def _runs_of_valid_jobs(
    batch: Sequence[Sequence[str]], first_job: int, failed: dict[int, Any]
) -> list[tuple[int, list[Sequence[str]]]]:
    """Consecutive valid jobs, so that each keeps its number in the sweep."""
    numbered = enumerate(batch, start=first_job)
    return _consecutive((job, o) for job, o in numbered if job not in failed)


def _record_of(result: JobReturn, job: int, overrides: Sequence[str]) -> Any:
    """A job's record from its ``JobReturn``: what the task returned, or an error
    row with the exception it raised."""
    if result.status == JobStatus.COMPLETED:
        value = result.return_value
        if isinstance(value, dict):
            record = dict(value)
            record["job"] = job
            return record
        message = f"the task returned {type(value).__name__}, not a record"
        return _error_record(job, overrides, message)
    if result.status != JobStatus.FAILED:
        return _error_record(job, overrides, "the job did not finish")
    # The task raised (a different task function, or a launcher-level failure):
    # return_value raises it again, after a line to stderr that the job's own
    # line and its row already say.
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            value = result.return_value
    except Exception as error:
        return _error_record(job, overrides, f"{type(error).__name__}: {error}")
    return _error_record(job, overrides, f"the job failed: {value!r}")


def _error_record(job: int, overrides: Sequence[str], message: str) -> Any:
    return {
        "job": job,
        "overrides": list(overrides),
        "status": "error",
        "error": message,
        "wall_time_s": 0.0,
        "metrics": {},
    }


# The search sweeper (hydra/sweeper=optuna); below the helpers it imports lazily.
from .optuna_sweeper import OptunaSweeper  # noqa: E402, F401
