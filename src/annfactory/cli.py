"""What ``scripts/run.py`` does around Hydra: check overrides first, run the task."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from hydra.experimental.callback import Callback

from annfactory.config import (
    CONFIG_NAME,
    argv_for_hydra,
    check_overrides,
    composer,
    config_dirs_from_argv,
    full_error_requested,
    override_error,
    overrides_from_argv,
    quote_free_text,
    to_spec,
)
from annfactory.config.edge import FlagsError, parse_flags
from annfactory.errors import AnnFactoryError, ConfigError
from annfactory.files import to_yaml, write_atomic
from annfactory.streams import guard_output

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "FULL_ERROR_HINT",
    "LOG_FILE",
    "HydraComposed",
    "QuietJobs",
    "RemoveFailedRunDir",
    "check_output_dir",
    "composition_errors_reworded",
    "hydra_composed",
    "precheck_argv",
    "run_task",
    "silence_known_warnings",
]


def silence_known_warnings() -> None:
    """Silence Hydra's warning about annfactory's launcher configs.

    They share their names with the launcher plugins' schemas on purpose, so that
    ``hydra/launcher=joblib`` gets annfactory's tuned defaults checked against the
    plugin's types; Hydra warns about that on every composition.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"\s*'hydra/launcher/(joblib|submitit_local|submitit_slurm)' is "
        r"validated against ConfigStore schema",
        category=UserWarning,
    )


#: The file of a run directory that holds what the run printed (its report).
LOG_FILE = "run.log"


# Also in every worker process of a parallel launcher, which imports this module to
# run the task function.
silence_known_warnings()


def precheck_argv(argv: Sequence[str]) -> list[str]:
    """Check the overrides of a command line before Hydra composes them.

    On an unknown group option or parameter, or a run directory that cannot be used
    (:func:`check_output_dir`), prints the error (names the override, the bad value
    and the closest valid one) and exits with status 1, as Hydra does for its own
    errors; ``HYDRA_FULL_ERROR=1`` raises instead.

    Returns:
        The command line as Hydra must receive it
        (:func:`annfactory.config.argv_for_hydra`).
    """
    from annfactory.resume import resume_argv

    try:
        argv = resume_argv(argv)
        overrides = overrides_from_argv(argv)
        check_overrides(overrides, config_dirs_from_argv(argv), skip_sweeps=True)
        check_output_dir(argv, quote_free_text(overrides))
    except AnnFactoryError as error:
        if full_error_requested():
            raise
        print(f"Error in the overrides: {error}", file=sys.stderr)
        sys.exit(1)
    return argv_for_hydra(argv)


def check_output_dir(argv: Sequence[str], overrides: Sequence[str]) -> None:
    """The run directory given on the command line (``hydra.run.dir=...``, or
    ``hydra.sweep.dir=...`` with ``-m``) must be a directory that can be created and
    written to; Hydra creates it before any of annfactory's code runs, and its own
    error is a traceback.

    An empty value would put the run's files into the working directory. The check
    leaves nothing behind: a folder it creates to try is removed again. Only the part
    before the first ``${...}`` interpolation is checked.

    Raises:
        ConfigError: The value is empty, names a file, or cannot be created or
            written to; names the key, the path and the reason.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = parse_flags(argv, known_only=True)
    except FlagsError:  # Hydra reports it
        return
    not_a_run = (
        args.cfg,
        args.help,
        args.hydra_help,
        args.info,
        args.shell_completion,
        args.experimental_rerun,
    )
    if any(not_a_run):
        return
    key, example = ("hydra.run.dir", "outputs/my_run")
    if args.multirun:
        key, example = ("hydra.sweep.dir", "multirun/my_sweep")
    given = [
        override
        for override in OverridesParser.create().parse_overrides(list(overrides))
        if override.key_or_group == key and not override.is_sweep_override()
    ]
    if not given or given[-1].is_delete():
        return
    value = given[-1].value()
    if value is None or not str(value).strip():
        raise ConfigError(
            key,
            f"is empty: the run would write its files into the working directory "
            f"({os.getcwd()}).",
            f"Name a directory, e.g. {key}={example}, or leave {key} out.",
        )
    text = str(value)
    if "${" in text:
        # Check only the whole directory names before the interpolation.
        text = text.split("${", 1)[0].rpartition("/")[0]
        if not text:
            return
    _probe_directory(key, Path(os.path.abspath(text)), example)


def _probe_directory(key: str, path: Path, example: str) -> None:
    """Create ``path`` (if missing) and a folder inside it, then remove what was
    created; an OSError on the way becomes a ConfigError that says why."""
    hint = f"Name a directory you can write to, e.g. {key}={example}."
    missing: list[Path] = []
    existing = path
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == path else f"is inside {str(existing)!r}, which is"
        raise ConfigError(key, f"{str(path)!r} {where} a file, not a directory.", hint)
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        os.rmdir(tempfile.mkdtemp(prefix=".annfactory-probe-", dir=path))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            key, f"{str(path)!r} cannot be created or written to: {reason}.", hint
        ) from None
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break


#: The line Hydra prints after an error's message.
FULL_ERROR_HINT = (
    "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
)
#: ``HYDRA_FULL_ERROR``'s value before :func:`composition_errors_reworded` set it,
#: while it is set (None: it was not set); empty otherwise.
_full_error_before: list[str | None] = []


@contextmanager
def composition_errors_reworded(args: argparse.Namespace | None) -> Iterator[None]:
    """Hydra's errors about one override, in annfactory's words, with no second
    composition where Hydra's succeeds.

    Until Hydra has composed the config (:func:`hydra_composed`), ``HYDRA_FULL_ERROR=1``
    is set, so that Hydra raises a composition error instead of printing it. The
    error about one override (a key that does not exist, set without ``+``) is then
    printed as :func:`annfactory.config.override_error` words it (key, value, closest
    key, the ``+`` form); any other as Hydra prints it. Exits 1, as Hydra does.

    Nothing changes where the user set ``HYDRA_FULL_ERROR=1`` (the traceback), nor
    once the config is composed: a job's errors are Hydra's to print.

    Args:
        args: The command line, parsed (:func:`~annfactory.config.edge.parse_flags`);
            None if argparse refused it (Hydra says so).
    """
    if args is None or full_error_requested():
        yield
        return
    _full_error_before.append(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except Exception as error:
        if not _full_error_before:
            raise  # after composing: raised under the user's own setting
        hydra_composed()
        _report_composition_failure(error, args)
    finally:
        hydra_composed()


def hydra_composed() -> None:
    """Hydra has composed the config: its errors are printed by Hydra again
    (``HYDRA_FULL_ERROR`` as the user set it)."""
    if not _full_error_before:
        return
    before = _full_error_before.pop()
    if before is None:
        os.environ.pop("HYDRA_FULL_ERROR", None)
    else:
        os.environ["HYDRA_FULL_ERROR"] = before


class HydraComposed(Callback):
    """A Hydra callback: the run's (or the sweep's) config is composed
    (:func:`hydra_composed`); first in ``hydra.callbacks`` of annfactory's config."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra_composed()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra_composed()


def _report_composition_failure(error: Exception, args: argparse.Namespace) -> NoReturn:
    """Print what Hydra raised composing the command line's config, as annfactory or
    as Hydra words it, and exit 1."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = overrides_from_argv(sys.argv[1:])  # as Hydra received them
    try:
        translated = override_error(error, overrides, _composer(args))
    except Exception:  # then Hydra's own words, below
        translated = None
    if translated is None and not isinstance(error, CompactHydraException):
        traceback.print_exc()  # before the task, Hydra prints the whole traceback
        sys.exit(1)
    print(error if translated is None else translated, file=sys.stderr)
    if translated is None and isinstance(error.__cause__, OmegaConfBaseException):
        print(error.__cause__, file=sys.stderr)
    print(f"\n{FULL_ERROR_HINT}", file=sys.stderr)
    sys.exit(1)


def _composer(
    args: argparse.Namespace,
) -> Callable[[list[str]], DictConfig] | None:
    """Composes the command line's config with other overrides, as Hydra did
    (:func:`annfactory.config.composer`); None for another app's config
    (``--config-path``), which annfactory does not know."""
    if args.config_path is not None:
        return None
    return composer(
        args.config_name or CONFIG_NAME,
        config_dirs_from_argv(sys.argv[1:]),
        multirun=bool(args.multirun),
    )


class RemoveFailedRunDir(Callback):
    """A Hydra callback: a run that fails leaves no empty run directory behind.

    Hydra creates the run directory (``outputs/<date>/<time>/``) before the task
    starts; annfactory writes into it only when the run succeeds. When the run fails,
    the folders that did not exist before it started are removed again, if still
    empty. Hydra calls it from ``hydra.callbacks`` in annfactory's config.
    """

    def __init__(self) -> None:
        super().__init__()
        self._created: list[Path] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        self._created = []
        try:
            folder = Path(
                os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir")))
            )
        except Exception:  # Hydra reports its own errors about the value
            return
        while not folder.exists() and folder != folder.parent:
            self._created.append(folder)
            folder = folder.parent

    def on_run_end(
        self, config: DictConfig, job_return: Any = None, **kwargs: Any
    ) -> None:
        from hydra.core.utils import JobStatus

        if job_return is None or job_return.status != JobStatus.FAILED:
            return
        for folder in self._created:  # the deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone: keep the rest
                break


#: The packages whose loggers may log a launcher's line per job: Hydra (its basic
#: launcher) and its plugins (joblib, submitit, any other).
_LAUNCHER_PACKAGES = ("hydra", "hydra_plugins")
#: Loggers of launchers that create them only when they launch (joblib imports its
#: launching module then): named here so the first sweep hides their lines too.
_LAUNCHER_LOGGERS = ("hydra_plugins.hydra_joblib_launcher._core",)
#: Such a line: ``\t#3 : model=demo seed=2``.
_LAUNCH_LINE = re.compile(r"^\t#\d+ : ")


class QuietJobs(Callback):
    """A Hydra callback: a sweep prints one line per job, the job's own.

    Hydra's launchers log ``#3 : model=demo seed=2`` as they start each job; the job
    then prints its one line with the same number and overrides, and its result
    (:func:`run_task`). This hides the launchers' per-job line, matched by its
    pattern on every logger of Hydra and its plugins, and keeps their others
    (``Launching 6 jobs locally``). Registered in ``hydra.callbacks`` of
    annfactory's config.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        names = [
            name
            for name in list(logging.root.manager.loggerDict)
            if name.partition(".")[0] in _LAUNCHER_PACKAGES
        ]
        for name in {*names, *_LAUNCHER_PACKAGES, *_LAUNCHER_LOGGERS}:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _HideLaunchLines) for f in logger.filters):
                logger.addFilter(_HideLaunchLines())


class _HideLaunchLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _LAUNCH_LINE.match(record.getMessage())


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """One job: validate ``cfg`` into a spec and run its task (``task=forward`` by
    default) in Hydra's output directory.

    A job of a sweep (``-m``) is quiet: its report goes to its ``run.log`` only, and
    it prints one line (:func:`annfactory.sweep.job_line`: its number, overrides,
    ok or error, key metric). It writes its record to ``job.json``, from which any
    sweeper's summary is made (:class:`annfactory.sweep.SummaryCallback`).

    Under annfactory's sweepers a failing job does not raise: it writes ``job.json``
    (and ``error.txt`` with the traceback for unexpected errors) and returns its
    record with ``status: error``, so the other jobs go on and the sweep's summary
    lists it. Elsewhere errors propagate as usual (after ``job.json`` in a sweep).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from annfactory.sweep import JOB_FILE, job_line, writes_own_summary

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return _run(cfg, output_dir)
    # A job may run in a launcher's worker process, which prints its line into the
    # same pipe as the command: a reader that has gone must not fail the job.
    guard_output()
    isolated = writes_own_summary(hydra_cfg.sweeper)
    start = time.perf_counter()
    record: dict[str, Any] = {
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "status": "ok",
        "error": None,
        "wall_time_s": 0.0,
        "metrics": {},
    }
    failure: Exception | None = None
    try:
        record["metrics"] = _run(cfg, output_dir, out=_Discard())
    except KeyboardInterrupt:
        # Ctrl-C: the job's row says so; the sweeper writes the summary of the
        # jobs that finished and stops.
        record["wall_time_s"] = time.perf_counter() - start
        record["status"] = "interrupted"
        record["error"] = f"stopped by Ctrl-C after {record['wall_time_s']:.1f} s"
        write_atomic(output_dir / JOB_FILE, json.dumps(record, indent=2, default=str))
        print(job_line(record), flush=True)  # type: ignore[arg-type]  # a JobRecord
        raise
    except Exception as error:
        failure = error
        record["status"] = "error"
        if isinstance(error, AnnFactoryError):
            record["error"] = str(error)
        else:
            record["error"] = f"{type(error).__name__}: {error}"
            if isolated:
                write_atomic(output_dir / "error.txt", traceback.format_exc())
    record["wall_time_s"] = time.perf_counter() - start
    write_atomic(output_dir / JOB_FILE, json.dumps(record, indent=2, default=str))
    if failure is not None and not isolated:
        raise failure  # the sweeper decides; Hydra reports it
    print(job_line(record), flush=True)  # type: ignore[arg-type]  # a JobRecord
    return record


class _Discard(io.StringIO):
    """Where a sweep job's report goes besides its ``run.log``: nowhere."""

    def write(self, text: str) -> int:
        return len(text)


def _run(
    cfg: DictConfig, output_dir: Path, out: TextIO | None = None
) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from annfactory.tasks import run_named_task

    overrides = list(HydraConfig.get().overrides.task)
    record = _hydra_record(cfg)
    task = cfg.get("task")
    if task is not None and task.get("name") == "train" and task.get("resume"):
        # task=train task.resume=<dir>: the run's own config, from its checkpoint.
        from annfactory.resume import resumed_config

        cfg, saved, overrides = resumed_config(cfg)
        record.update(saved)
        task = cfg.get("task")
    spec = to_spec(cfg)
    node = OmegaConf.to_container(task, resolve=True) if task is not None else None
    return run_named_task(
        node,
        spec,
        output_dir,
        out=sys.stdout if out is None else out,
        record=record,
        overrides=overrides,
        log_file=LOG_FILE,
    )


def _hydra_record(cfg: DictConfig) -> dict[str, str]:
    """What Hydra itself would write to ``.hydra/`` at the start of a job.

    annfactory's config sets ``hydra.output_subdir: null`` and writes these files with
    the run's other outputs instead, only when the run succeeds, so a failed run in
    the same directory leaves an earlier run's record as it was.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    # Not OmegaConf.to_yaml({"hydra": hydra_cfg}): wrapping the node in a new config
    # copies it first (most of a sweep job's cost of these files).
    hydra_data = OmegaConf.to_container(hydra_cfg, enum_to_str=True)
    return {
        ".hydra/config.yaml": to_yaml(cfg),
        ".hydra/hydra.yaml": to_yaml({"hydra": hydra_data}),
        ".hydra/overrides.yaml": to_yaml(list(hydra_cfg.overrides.task)),
    }
