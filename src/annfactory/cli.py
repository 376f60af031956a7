"""What ``scripts/run.py`` does around Hydra: check overrides first, run the task."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback

from annfactory.config import (
    argv_for_hydra,
    check_overrides,
    config_dirs_from_argv,
    full_error_requested,
    overrides_from_argv,
    to_spec,
)
from annfactory.errors import AnnFactoryError, ConfigError
from annfactory.files import write_atomic

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "LOG_FILE",
    "RemoveFailedRunDir",
    "check_output_dir",
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
    try:
        overrides = overrides_from_argv(argv)
        check_overrides(overrides, config_dirs_from_argv(argv), skip_sweeps=True)
        check_output_dir(argv, overrides)
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
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # argparse reports its own errors; let Hydra do that
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


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """One job: validate ``cfg`` into a spec and run its task (``task=forward`` by
    default) in Hydra's output directory.

    In a sweep run by annfactory's sweeper, a failing job does not raise: it prints its
    message (no traceback), writes ``job.json`` (and ``error.txt`` with the traceback
    for unexpected errors), and returns its record with ``status: error``, so the other
    jobs go on and the sweep's summary lists it. Elsewhere errors propagate as usual.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode != RunMode.MULTIRUN or not _annfactory_sweeper(hydra_cfg):
        return _run(cfg, output_dir)
    start = time.perf_counter()
    record: dict[str, Any] = {
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "status": "ok",
        "error": None,
        "wall_time_s": 0.0,
        "metrics": {},
    }
    try:
        record["metrics"] = _run(cfg, output_dir)
    except Exception as error:
        record["status"] = "error"
        if isinstance(error, AnnFactoryError):
            record["error"] = str(error)
        else:
            record["error"] = f"{type(error).__name__}: {error}"
            write_atomic(output_dir / "error.txt", traceback.format_exc())
        print(f"Job {record['job']} failed: {record['error']}", file=sys.stderr)
    record["wall_time_s"] = time.perf_counter() - start
    write_atomic(output_dir / "job.json", json.dumps(record, indent=2, default=str))
    return record


def _run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    spec = to_spec(cfg)
    from omegaconf import OmegaConf

    from annfactory.tasks import run_named_task

    task = cfg.get("task")
    node = OmegaConf.to_container(task, resolve=True) if task is not None else None
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    return run_named_task(
        node,
        spec,
        output_dir,
        record=_hydra_record(cfg),
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
    return {
        ".hydra/config.yaml": OmegaConf.to_yaml(cfg),
        ".hydra/hydra.yaml": OmegaConf.to_yaml({"hydra": hydra_cfg}),
        ".hydra/overrides.yaml": OmegaConf.to_yaml(list(hydra_cfg.overrides.task)),
    }


def _annfactory_sweeper(hydra_cfg: Any) -> bool:
    # AnnFactorySweeper and OptunaSweeper: both collect records instead of raising.
    target = str(hydra_cfg.sweeper.get("_target_", ""))
    return target.startswith("hydra_plugins.annfactory_sweeper.")
