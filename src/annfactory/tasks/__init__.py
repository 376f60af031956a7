"""Tasks that ``scripts/run.py`` runs (``task=<name>``): the built-in tasks, and
running one.

A task is one registered :class:`Task`: its ``run(context) -> metrics`` function and
the schema of its options (the ``task`` node's keys besides ``name``). A task module
registers itself with a decorator on its run function, the way the built-in ones do::

    @tasks.register("count", params={"scale": Param(float, 1.0, "...")})
    def run(context: TaskContext) -> dict[str, Any]:
        ...

The options are checked twice through the same schema: by the override check before
Hydra composes (an unknown key names the closest one) and, complete, before the task
runs (:func:`parse_task_options`). ``run`` prints its report to ``context.out``,
writes files through ``context.path(...)``, and returns the metrics for
``metrics.json``. A task with ``compiles=True`` honours ``compile=true`` (runs the
network through ``torch.compile``); with any other task ``compile=true`` is refused.
Likewise a task declares whether it reads the top-level ``batch_size``
(``reads_batch_size``); a ``batch_size`` set for one that does not is refused, not
ignored (``task=train`` takes its rows per step from ``task.batch_size``).

The registry itself, :data:`tasks`, lives below the config groups in
:mod:`annfactory.task_registry` (re-exported here). Importing this package imports the
built-in task modules, which import torch and
matplotlib only inside their functions: the override check and ``--help`` read the
schemas without paying for torch. Other packages add tasks as plugins
(:mod:`annfactory.plugins`), looked up when a name is missing.

Files are written to a staging folder and moved into the run directory only when the
task succeeds, so a failed run never overwrites or deletes what an earlier run saved
there. The staging folder (``.staging-<pid>`` beside the run directory, on the same
file system) is kept for the process's next run and removed when the process ends:
removing a folder costs milliseconds on some file systems (``discard`` mounts), a
noticeable part of a sweep job.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from annfactory.errors import ConfigError
from annfactory.runs import METRICS_FILE, SPEC_FILE, metrics_json, save_run
from annfactory.task_registry import (
    TASKS,
    Task,
    check_option_names,
    parse_task_options,
    task_name,
    tasks,
)

if TYPE_CHECKING:
    from torch import nn

    from annfactory.spec import RunSpec

__all__ = [
    "TASKS",
    "Task",
    "TaskContext",
    "check_option_names",
    "parse_task_options",
    "refuse_group_overrides",
    "run_named_task",
    "task_name",
    "tasks",
]


@dataclass
class TaskContext:
    """What a task gets: the spec, its validated options, where to write and print."""

    spec: RunSpec
    options: Any
    output_dir: Path | None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    #: The command line's overrides (Hydra's ``overrides.task``), for titles.
    overrides: tuple[str, ...] = ()
    #: What the run saves of its config besides its outputs (Hydra's
    #: ``.hydra/*.yaml``, name to text): a checkpoint carries it.
    record: Mapping[str, str] = field(default_factory=dict)
    #: Files of the run directory that the task needs only until it succeeds (an
    #: interrupted run's checkpoint): removed once its outputs are in place.
    transient: list[str] = field(default_factory=list)
    _staging: Path | None = None

    @property
    def own_overrides(self) -> tuple[str, ...]:
        """The command line's overrides without Hydra's own settings
        (``hydra.run.dir=...``): what tells the runs of a sweep apart, for titles."""
        return tuple(
            item
            for item in self.overrides
            if not item.lstrip("+~").startswith(("hydra.", "hydra/"))
        )

    def path(self, name: str) -> Path | None:
        """Where to write the output file ``name`` (None: the run writes no files).

        The file lands in the run directory when the task succeeds.
        """
        if self.output_dir is None:
            return None
        if self._staging is None:
            self._staging = _staging_folder(self.output_dir)
        return self._staging / name

    def write_text(self, name: str, text: str) -> None:
        """Write a text output file (staged like every output); ``name`` may name a
        subfolder (``.hydra/config.yaml``)."""
        path = self.path(name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def commit(self) -> list[str]:
        """Move the staged files into the run directory; return their names."""
        if self._staging is None or self.output_dir is None:
            return []
        staging = self._staging
        names = sorted(
            str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()
        )
        folders = {Path(name).parent for name in names}
        for folder in sorted(folders):
            (self.output_dir / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / name, self.output_dir / name)
        self._staging = None  # empty again: the next run's
        return names

    def discard(self) -> None:
        """Drop the staged files of a failed task."""
        if self._staging is not None:
            _STAGING.pop(self._staging.parent, None)
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


#: The staging folder of this process, per folder of run directories.
_STAGING: dict[Path, Path] = {}


def _staging_folder(output_dir: Path) -> Path:
    """This process's empty staging folder beside ``output_dir``: made on first use
    (and removed at exit), then reused by every run whose directory is beside it."""
    parent = output_dir.resolve().parent
    staging = _STAGING.get(parent)
    if staging is None or not staging.is_dir():
        staging = parent / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed process
        staging.mkdir(parents=True)
        if not _STAGING:
            atexit.register(_remove_staging_folders)
        _STAGING[parent] = staging
    return staging


def _remove_staging_folders() -> None:
    for staging in _STAGING.values():
        shutil.rmtree(staging, ignore_errors=True)
    _STAGING.clear()


def save_model(context: TaskContext, model: nn.Module) -> None:
    """Stage the run's ``spec.yaml`` and (off the meta device) ``weights.safetensors``
    with :func:`annfactory.runs.save_run`; they land in the run directory when the
    task succeeds. A run without a directory saves nothing."""
    spec_path = context.path(SPEC_FILE)
    if spec_path is not None:
        save_run(spec_path.parent, context.spec, model)


def run_named_task(
    node: Any,
    spec: RunSpec,
    output_dir: Path | None,
    out: TextIO = sys.stdout,
    record: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
    log_file: str | None = None,
) -> dict[str, Any]:
    """Validate the task options, run the task, and save its outputs.

    Every task's run directory gets ``metrics.json`` (the returned metrics, with the
    task's name) besides the task's own files, and the files of ``record`` (name to
    text, such as Hydra's ``.hydra/config.yaml``), all only if the task succeeds.
    ``overrides`` (the command line's) reach the task as ``context.overrides``.
    With ``log_file`` (``run.log`` on the command line), what the task prints to
    ``out`` is saved to that file too.

    Raises:
        ConfigError: The task's options are invalid, or ``compile=true`` or
            ``batch_size`` is set for a task that does not use it.
    """
    name = task_name(node)
    task = tasks.get(name)
    given = {k: v for k, v in (node or {}).items() if k != "name"} if node else {}
    options = parse_task_options(name, given, "task")
    if spec.compile and not task.compiles:
        compiling = [
            f"task={other}" for other, entry in tasks.items() if entry.compiles
        ]
        raise ConfigError(
            "compile",
            f"task '{name}' does not run the network through torch.compile, so "
            "compile=true would do nothing.",
            f"Leave compile out, or use it with {' or '.join(compiling)}.",
        )
    if _sets_batch_size(spec, overrides) and not task.reads_batch_size_with(options):
        _refuse_batch_size(name, task, spec.batch_size)
    report = _Report(out) if log_file is not None else None
    if report is not None:
        out = report
    context = TaskContext(
        spec=spec,
        options=options,
        output_dir=output_dir,
        out=out,
        overrides=tuple(overrides),
        record=dict(record or {}),
    )
    try:
        metrics: dict[str, Any] = {"task": name, **task.run(context)}
        context.write_text(METRICS_FILE, metrics_json(metrics))
        if report is not None and log_file is not None and report.getvalue():
            context.write_text(log_file, report.getvalue())
        for file, text in context.record.items():
            context.write_text(file, text)
        context.commit()
    except BaseException:
        context.discard()
        raise
    if context.output_dir is not None:
        for file in context.transient:
            (context.output_dir / file).unlink(missing_ok=True)
    return metrics


def _sets_batch_size(spec: RunSpec, overrides: Sequence[str]) -> bool:
    """Whether the run sets the top-level ``batch_size``: a value other than the
    default, or an override that names it (even with the default value)."""
    default = next(f.default for f in fields(spec) if f.name == "batch_size")
    named = any(
        item.lstrip("+~").partition("=")[0].strip() == "batch_size"
        for item in overrides
    )
    return named or spec.batch_size != default


def _refuse_batch_size(name: str, task: Task, value: int) -> None:
    """Refuse a top-level ``batch_size`` that task ``name`` would ignore, pointing
    to the task's own ``task.batch_size`` where it has one."""
    own = task.params.get("batch_size")
    if own is not None or "batch_size" in task.other_options:
        what = f" ({own.meaning})" if own is not None and own.meaning else ""
        raise ConfigError(
            "batch_size",
            f"task '{name}' does not read the top-level batch_size ({value}): "
            f"task.batch_size sets its rows{what}.",
            f"Use task.batch_size={value} instead.",
        )
    reading = [
        f"task={other}"
        for other, entry in tasks.items()
        if entry.reads_batch_size is True
    ]
    raise ConfigError(
        "batch_size",
        f"task '{name}' draws no batch of rows, so batch_size={value} would do "
        "nothing.",
        f"Leave batch_size out, or use it with {' or '.join(reading)}.",
    )


class _Report(io.StringIO):
    """What a task prints: passed on to ``out`` as it comes, and kept for the run's
    log file."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(text)
        return super().write(text)

    def flush(self) -> None:
        self._out.flush()


def refuse_group_overrides(
    overrides: Sequence[str], groups: Sequence[str], problem: str, fix: str
) -> None:
    """Refuse an override of any of ``groups`` (``model=mlp``, ``init@...``,
    ``+model.x=1``): a task that takes its network from a saved run would ignore it.

    Args:
        overrides: The command line's own overrides.
        groups: The top-level keys and groups refused.
        problem: What is wrong, with ``{override}`` for the override as given.
        fix: The fix.

    Raises:
        ConfigError: Names the override's key.
    """
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        group = key.split("@", 1)[0].split(".", 1)[0].split("/", 1)[0]
        if group in groups:
            raise ConfigError(key, problem.format(override=override), fix)


# The built-in tasks register themselves (as timm's models/__init__ imports its model
# files); below the registry, which they import.
from annfactory.tasks import (  # noqa: E402, F401
    activations,
    diagnose,
    evaluate,
    export,
    forward,
    init_report,
    predict,
    train,
)
