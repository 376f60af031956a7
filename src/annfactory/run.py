"""annfactory's command line: the Hydra application behind all three ways to start it.

    annfactory model=demo                 (installed: the console script)
    python -m annfactory model=demo       (installed)
    python scripts/run.py model=demo      (a clone of the repository; a thin shim)

All three call :func:`main`: the flags and the overrides are checked before Hydra
composes anything, then Hydra runs :func:`run_task` as usual. Hydra names the job
after this module, ``run`` (``run.log`` in each run's directory), and finds the
configs in the package (``pkg://annfactory/conf``), in a clone or installed alike.

Output piped into a program that exits early (``annfactory ... | head -1``) stops
being printed, not the run: it finishes, saves its files and exits 0
(:mod:`annfactory.streams`).

Hydra stops with a ``ValueError`` traceback when a command line combines flags that
each choose what the command does (``-m --cfg job``); :func:`check_command_flags` says
so in two lines instead. ``--help`` lists the sweepers and launchers through the
``annfactory.options`` resolver (:func:`group_options`), from Hydra's own config
sources and plugins, and shows its examples with the command that was typed
(``annfactory.footer``).
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf

from annfactory.checkpoints import TrainingStopped
from annfactory.cli import (
    composition_errors_reworded,
    hydra_composed,
    precheck_argv,
    run_task,
)
from annfactory.config.edge import FlagsError, parse_flags
from annfactory.hydra_report import reported
from annfactory.resume import stopped_line
from annfactory.streams import guard_output

__all__ = ["check_command_flags", "group_options", "main", "parse_hydra_flags"]

#: How the running command was typed, for the examples of ``--help``.
_command = "annfactory"
#: Whether this command shows the help. OmegaConf evaluates the help's resolvers
#: whenever Hydra merges the hydra config (four times a composition), and listing
#: the options takes about 0.1 s, so the help's resolvers do their work only for
#: ``--help``.
_help_requested = False


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@reported
def _app(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's task function: one job of a run or a sweep."""
    hydra_composed()  # where hydra.callbacks leaves annfactory's callbacks out
    return run_task(cfg)


def main(command: str = "annfactory") -> None:
    """Run annfactory's command line on ``sys.argv``.

    Args:
        command: How the user starts it (``annfactory``, ``python -m annfactory``,
            ``python scripts/run.py``), shown in the examples of ``--help``.
    """
    global _command, _help_requested
    _command = command
    # A reader that stops early (| head) ends the printing, not the run.
    guard_output()
    argv = sys.argv[1:]
    args = parse_hydra_flags(argv)
    if args is not None:  # else Hydra reports the bad flag itself
        _help_requested = bool(args.help)
        check_command_flags(args)
        sys.argv[1:] = precheck_argv(argv)
    try:
        with composition_errors_reworded(args):
            _app()
    except TrainingStopped as stop:
        # Ctrl-C or SIGTERM while training: the checkpoint is written; one line
        # says how to continue, and the exit status is the signal's (130, 143).
        print(stopped_line(stop, command), file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    finally:
        # The process ends next. Python's garbage collections at exit would walk
        # every object torch and the others made, about half a second for nothing:
        # frozen, they are left to the operating system. (Files are closed by now;
        # atexit handlers, logging's included, still run.)
        gc.freeze()


#: Hydra's flags that each choose what the command does; Hydra takes one at most.
_COMMAND_FLAGS = {
    "run": "--run",
    "multirun": "-m/--multirun",
    "cfg": "--cfg",
    "info": "--info",
    "shell_completion": "--shell-completion",
}


def parse_hydra_flags(argv: Sequence[str]) -> argparse.Namespace | None:
    """``argv`` parsed as Hydra 1.3 parses it
    (:func:`annfactory.config.edge.parse_flags`), or None if argparse rejects it
    (Hydra then prints the usage; printing it here too would show it twice)."""
    try:
        return parse_flags(argv)
    except FlagsError:
        return None


def check_command_flags(args: argparse.Namespace) -> None:
    """Exit with status 2 and a short message where Hydra would raise a ``ValueError``
    about its flags: more than one of ``--run``, ``-m``, ``--cfg``, ``--info`` and
    ``--shell-completion``, or ``--resolve`` without ``--cfg`` or ``--help``.

    ``--help`` and ``--hydra-help`` win over the others in Hydra, so they pass.
    """
    from annfactory.config import full_error_requested

    if args.help or args.hydra_help or full_error_requested():
        return
    given = [
        flag
        for key, flag in _COMMAND_FLAGS.items()
        if getattr(args, key) not in (None, False)
    ]
    if len(given) > 1:
        lines = [
            f"Error: {' and '.join(given)} cannot be combined; give one of "
            f"{', '.join(_COMMAND_FLAGS.values())}."
        ]
        if args.multirun and args.cfg:
            lines.append(
                "To see one job's config, drop -m and give one value per key: "
                "--cfg job seed=1 (not seed=1,2)."
            )
        _usage_error(lines)
    if args.resolve and args.cfg is None:
        _usage_error(["Error: --resolve only works with --cfg or --help."])


def _usage_error(lines: list[str]) -> NoReturn:
    print("\n".join(lines), file=sys.stderr)
    sys.exit(2)


def group_options(group: str, *, _root_: DictConfig) -> str:
    """The options of a Hydra config group as the help lists them.

    Every option Hydra would accept for ``group`` (annfactory's files and the configs
    that installed plugins store), sorted, the one this command line selects marked
    ``(selected)``, and ``(plugin not installed)`` after an option whose ``_target_``
    names no plugin that Hydra found. Used in ``conf/hydra/help/annfactory.yaml`` as
    ``${annfactory.options:hydra/launcher}``; empty unless the command shows its help.
    """
    if not _help_requested:
        return ""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    selected = OmegaConf.select(_root_, "hydra.runtime.choices", default={}).get(group)
    installed = _plugin_targets()
    shown = []
    for option in sorted(loader.get_group_options(group)):
        target = _target_of(loader, f"{group}/{option}")
        notes = []
        if option == selected:
            notes.append("selected")
        if target is not None and target not in installed:
            notes.append("plugin not installed")
        shown.append(option + "".join(f" ({note})" for note in notes))
    return ", ".join(shown)


def _plugin_targets() -> set[str]:
    """``module.Class`` of every plugin Hydra discovered."""
    from hydra.core.plugins import Plugins

    return {f"{c.__module__}.{c.__qualname__}" for c in Plugins.instance().discover()}


def _target_of(loader: Any, config_path: str) -> str | None:
    """The ``_target_`` of a config, from the first source in the search path that
    holds it (None without one)."""
    for source in loader.get_sources():
        if source.is_config(config_path):
            node = source.load_config(config_path).config
            target = node.get("_target_") if hasattr(node, "get") else None
            return None if target is None else str(target)
    return None


def help_footer(*, _parent_: DictConfig) -> str:
    """The help's footer (``hydra.help.footer``) with its examples' command as the
    user typed it: ``python -m annfactory model=demo`` where the footer says
    ``annfactory model=demo``. Used in the help's template as ``${annfactory.footer:}``;
    empty unless the command shows its help."""
    if not _help_requested:
        return ""
    footer = str(_parent_.get("footer", ""))
    return re.sub(r"(?m)^(\s+)annfactory ", rf"\g<1>{_command} ", footer)


# On import, so that Hydra finds them when it renders the help of this application.
OmegaConf.register_new_resolver("annfactory.options", group_options, replace=True)
OmegaConf.register_new_resolver("annfactory.footer", help_footer, replace=True)
