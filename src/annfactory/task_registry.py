"""The ``tasks`` registry: what each task is called, what options it takes, which
config groups it reads and its headline metric.

A task is one registered :class:`Task`. The registry sits below the config groups
(:mod:`annfactory.groups` offers its names as the ``task`` group's options and reads
each task's ``groups``), and below everything a task's work needs: the spec, the
factory, the run files. Those live in :mod:`annfactory.tasks`, which holds the
built-in tasks; its modules register them here when the package is imported, as a
plugin package's module registers its own (:mod:`annfactory.plugins`). Nothing here
imports them: :func:`loaded_tasks` imports the package by name, the way plugins are
loaded by the name their entry point gives, the first time a caller below it needs
the complete registry.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from annfactory.errors import RegistrationError
from annfactory.params import Param, check_keys, validate_params
from annfactory.plugins import load_plugins
from annfactory.registry import Registry

__all__ = [
    "BUILT_IN_TASKS",
    "TASKS",
    "ParseOptions",
    "RunFunction",
    "Task",
    "check_option_names",
    "loaded_tasks",
    "parse_task_options",
    "task_name",
    "tasks",
]

#: The package whose modules register the built-in tasks.
BUILT_IN_TASKS: Final = "annfactory.tasks"


RunFunction = Callable[[Any], Mapping[str, Any]]
"""A task's work: ``run(context) -> metrics``, ``context`` an
:class:`annfactory.tasks.TaskContext`."""
ParseOptions = Callable[[Mapping[str, Any], str], Any]
"""``parse_options(given, key) -> options``: ``given`` is the ``task`` node without
``name``, ``key`` its config path; errors name ``<key>.<option>``."""


@dataclass(frozen=True)
class Task:
    """A task: what it does and the schema of its options.

    Args:
        run: ``run(context) -> metrics``; ``context.options`` holds the parsed
            options.
        params: The options that are one bool, int, float or string, with their
            types, defaults and bounds.
        parse_options: Turns the given options into what ``context.options`` holds,
            with the rules that ``params`` cannot say (cross-option rules, lists,
            mappings). None: ``validate_params`` over ``params``, a dict with every
            option.
        other_options: Options that only ``parse_options`` reads (lists, mappings),
            by name: with ``params`` they are the keys a ``task`` node may hold.
        compiles: The task honours ``compile=true``.
        reads_batch_size: The task uses the top-level ``batch_size`` (the rows of
            the run's random batch), or a function of the parsed options that says
            whether it does (``task=diagnose`` does with ``task.batch_size=null``).
            A ``batch_size`` set for a task that does not is refused.
        objectives: The metrics a search may optimize (``hydra/sweeper=optuna``):
            dotted path into the returned metrics -> ``"minimize"`` or
            ``"maximize"``. The first one is the search's default objective.
        groups: The config groups beyond the primary config's that the task reads
            (``train``: ``data`` and ``optimizer``), which its option file declares
            in its defaults list; the override check refuses them for other tasks.
        metric: The task's headline metric, the one a sweep job's line shows:
            dotted paths into the returned metrics, the first one reported wins
            (``train``: ``val_accuracy``, or ``val_r2`` for regression data).
        doc: One line for listings.
    """

    run: RunFunction
    params: Mapping[str, Param] = field(default_factory=dict)
    parse_options: ParseOptions | None = None
    other_options: tuple[str, ...] = ()
    compiles: bool = False
    reads_batch_size: bool | Callable[[Any], bool] = True
    objectives: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    metric: tuple[str, ...] = ()
    doc: str = ""

    @property
    def option_names(self) -> tuple[str, ...]:
        """Every key a ``task`` node may hold besides ``name``."""
        return (*self.params, *self.other_options)

    def reads_batch_size_with(self, options: Any) -> bool:
        """Whether the task, with these parsed options, uses the top-level
        ``batch_size``."""
        if callable(self.reads_batch_size):
            return bool(self.reads_batch_size(options))
        return self.reads_batch_size


def _task_from(obj: Any, *, name: str, **options: Any) -> Task:
    """Registry coercion: accept a :class:`Task`, or a run function and the Task's
    other fields as keyword options (``doc`` defaults to the first line of the run
    function's module docstring, or of its own)."""
    if isinstance(obj, Task):
        if options:
            raise RegistrationError(f"task {name!r}: options given with a Task")
        return obj
    if not callable(obj):
        raise RegistrationError(
            f"task {name!r}: expected a run function or a Task, got "
            f"{type(obj).__name__}"
        )
    module = inspect.getmodule(obj)
    doc = (
        options.pop("doc", None)
        or (module.__doc__ if module is not None else None)
        or obj.__doc__
        or ""
    )
    try:
        return Task(run=obj, doc=doc.strip().split("\n")[0], **options)
    except TypeError as error:
        raise RegistrationError(f"task {name!r}: {error}") from None


tasks: Registry[Task] = Registry("task", coerce=_task_from, on_miss=load_plugins)
"""The task registry: ``task=<name>`` runs the entry called ``name``."""


class _TaskModules(Mapping[str, str]):
    """Task name -> the module of its run function, read from :data:`tasks`."""

    def __getitem__(self, name: str) -> str:
        if name not in tasks:
            raise KeyError(name)
        return tasks.get(name).run.__module__

    def __iter__(self) -> Iterator[str]:
        return iter(tasks.names())

    def __len__(self) -> int:
        return len(tasks)


TASKS: Mapping[str, str] = _TaskModules()
"""Task name -> module, read-only (kept from before the registry; use :data:`tasks`)."""


def loaded_tasks() -> Registry[Task]:
    """The task registry with the built-in tasks registered (their package is
    imported, by name, on the first call; later calls cost a dictionary look-up)."""
    importlib.import_module(BUILT_IN_TASKS)
    return tasks


def task_name(node: Any, key: str = "task") -> str:
    """The task a ``task`` node names (default ``forward``), checked."""
    if node is None:
        return "forward"
    name = node.get("name", "forward") if isinstance(node, Mapping) else node
    loaded_tasks().get(name, key=f"{key}.name")  # an unknown name loads plugins first
    return str(name)


def check_option_names(name: str, given: Collection[str], key: str = "task") -> None:
    """Each option in ``given`` is one that task ``name`` declares.

    The override check and :func:`parse_task_options` both call it: one rule.

    Raises:
        UnknownNameError: Names ``<key>.<option>`` and the closest declared option.
    """
    options = loaded_tasks().get(name).option_names
    check_keys(given, options, key, "key", where=f" for task {name!r}")


def parse_task_options(name: str, given: Mapping[str, Any], key: str = "task") -> Any:
    """The options of task ``name``, validated by its schema.

    Args:
        name: The task.
        given: The ``task`` node without ``name``.
        key: The node's config path.

    Raises:
        ConfigError: An unknown option (names the closest one) or a bad value;
            the message names ``<key>.<option>``.
    """
    task = loaded_tasks().get(name)
    check_option_names(name, given, key)
    if task.parse_options is not None:
        return task.parse_options(given, key)
    return validate_params(given, task.params, key, f"task {name!r}")
