"""Tasks that ``scripts/run.py`` dispatches to (``task=<name>``), one module each.

A task module defines:

- ``parse_options(node, key) -> Any``: validates its options (the ``task`` node without
  ``name``) before anything is built, raising :class:`~annfactory.ConfigError` with the
  config path;
- ``run(context) -> dict``: does the work, prints its report to ``context.out``, writes
  files through ``context.path(...)``, and returns the metrics for ``metrics.json``;
- optionally ``COMPILES = True``: it honours ``compile=true`` (runs the network through
  ``torch.compile``). With any other task, ``compile=true`` is refused.

Files are written to a staging folder and moved into the run directory only when the
task succeeds, so a failed run never overwrites or deletes what an earlier run saved
there.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.runs import METRICS_FILE, SPEC_FILE, metrics_json, save_run
from annfactory.spec import RunSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TASKS", "TaskContext", "run_named_task", "save_model"]

#: Task name -> module. The ``task`` config group has one YAML file per name.
TASKS: dict[str, str] = {
    "forward": "annfactory.tasks.forward",
    "activations": "annfactory.tasks.activations",
    "init_report": "annfactory.tasks.init_report",
    "diagnose": "annfactory.tasks.diagnose",
}


@dataclass
class TaskContext:
    """What a task gets: the spec, its validated options, where to write and print."""

    spec: RunSpec
    options: Any
    output_dir: Path | None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    #: The command line's overrides (Hydra's ``overrides.task``), for titles.
    overrides: tuple[str, ...] = ()
    _staging: Path | None = None

    def path(self, name: str) -> Path | None:
        """Where to write the output file ``name`` (None: the run writes no files).

        The file lands in the run directory when the task succeeds.
        """
        if self.output_dir is None:
            return None
        if self._staging is None:
            self._staging = self.output_dir / f".staging-{os.getpid()}"
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging.mkdir(parents=True)
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
        for name in names:
            (self.output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, self.output_dir / name)
        shutil.rmtree(staging)
        self._staging = None
        return names

    def discard(self) -> None:
        """Drop the staged files of a failed task."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def save_model(context: TaskContext, model: nn.Module) -> None:
    """Stage the run's ``spec.yaml`` and (off the meta device) ``weights.safetensors``
    with :func:`annfactory.runs.save_run`; they land in the run directory when the
    task succeeds. A run without a directory saves nothing."""
    spec_path = context.path(SPEC_FILE)
    if spec_path is not None:
        save_run(spec_path.parent, context.spec, model)


def task_name(node: Any, key: str = "task") -> str:
    """The task a ``task`` node names (default ``forward``), checked."""
    if node is None:
        return "forward"
    name = node.get("name", "forward") if isinstance(node, Mapping) else node
    if not isinstance(name, str) or name not in TASKS:
        raise UnknownNameError(f"{key}.name", "task", name, TASKS)
    return name


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
        ConfigError: The task's options are invalid, or ``compile=true`` is set for
            a task that compiles nothing.
    """
    name = task_name(node)
    module = importlib.import_module(TASKS[name])
    given = {k: v for k, v in (node or {}).items() if k != "name"} if node else {}
    options = module.parse_options(given, "task")
    if spec.compile and not getattr(module, "COMPILES", False):
        compiling = [
            f"task={other}"
            for other, path in TASKS.items()
            if getattr(importlib.import_module(path), "COMPILES", False)
        ]
        raise ConfigError(
            "compile",
            f"task '{name}' does not run the network through torch.compile, so "
            "compile=true would do nothing.",
            f"Leave compile out, or use it with {' or '.join(compiling)}.",
        )
    report = _Report(out) if log_file is not None else None
    if report is not None:
        out = report
    context = TaskContext(
        spec=spec,
        options=options,
        output_dir=output_dir,
        out=out,
        overrides=tuple(overrides),
    )
    try:
        metrics: dict[str, Any] = {"task": name, **module.run(context)}
        context.write_text(METRICS_FILE, metrics_json(metrics))
        if report is not None and log_file is not None and report.getvalue():
            context.write_text(log_file, report.getvalue())
        for file, text in (record or {}).items():
            context.write_text(file, text)
        context.commit()
    except BaseException:
        context.discard()
        raise
    return metrics


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
