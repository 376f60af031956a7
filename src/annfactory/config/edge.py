"""The command-line edge: a ``scripts/run.py`` command line parsed as Hydra parses it
(:func:`args_parser`: Hydra 1.3's flags, annfactory's own parser), its overrides and
``--config-dir`` folders, and the overrides as Hydra must receive them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from annfactory.config.rewriting import (
    parsed_overrides,
    quote_free_text,
    rewritten_for_hydra,
)
from annfactory.errors import (
    ConfigError,
)

__all__ = [
    "FlagsError",
    "args_parser",
    "argv_for_hydra",
    "config_dirs_from_argv",
    "full_error_requested",
    "overrides_from_argv",
    "parse_flags",
]

#: ``--info``'s topics; alone, ``--info`` is ``--info all``.
INFO_TOPICS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


class FlagsError(Exception):
    """argparse refused a command line (an unknown flag, a bad choice); Hydra reports
    that itself, with its usage."""


class _HydraFlags(argparse.ArgumentParser):
    """An argparse parser that raises :class:`FlagsError` instead of printing the
    usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise FlagsError(message)


def args_parser() -> argparse.ArgumentParser:
    """A parser of Hydra 1.3's command line, flag for flag and with the same
    destinations as Hydra's own (``args.cfg``, ``args.multirun``, ``args.overrides``,
    ...), for the checks made before Hydra parses it again and runs.

    It refuses what Hydra's refuses, raising :class:`FlagsError` (Hydra then prints
    its usage). ``--version`` prints Hydra's version and exits, as Hydra's does.
    """
    from hydra import __version__

    parser = _HydraFlags(add_help=False, description="Hydra")
    add = parser.add_argument
    add("--help", "-h", action="store_true", help="Application's help")
    add("--hydra-help", action="store_true", help="Hydra's help")
    add("--version", action="version", version=f"Hydra {__version__}")
    add("overrides", nargs="*", help="key=value overrides")
    add("--cfg", "-c", choices=["job", "hydra", "all"], help="show the config")
    add("--resolve", action="store_true", help="resolve interpolations (--cfg)")
    add("--package", "-p", help="config package to show")
    add("--run", "-r", action="store_true", help="run a job")
    add("--multirun", "-m", action="store_true", help="run a sweep")
    add("--shell-completion", "-sc", action="store_true", help="shell completion")
    add("--config-path", "-cp", help="the primary config's folder")
    add("--config-name", "-cn", help="the primary config's name")
    add("--config-dir", "-cd", help="an extra config folder")
    add("--experimental-rerun", help="rerun a job from its config pickle")
    add("--info", "-i", nargs="?", const="all", choices=INFO_TOPICS, help="info")
    return parser


def parse_flags(argv: Sequence[str], known_only: bool = False) -> argparse.Namespace:
    """``argv`` parsed as Hydra 1.3 parses it (:func:`args_parser`).

    Args:
        argv: The command line, without the program.
        known_only: Leave arguments that are no flag of Hydra's aside instead of
            refusing them.

    Raises:
        FlagsError: argparse refused the command line.
    """
    parser = args_parser()
    if known_only:
        args, _ = parser.parse_known_args(list(argv))
        return args
    return parser.parse_args(list(argv))


def argv_for_hydra(argv: Sequence[str]) -> list[str]:
    """A ``scripts/run.py`` command line with its overrides as Hydra must receive
    them (:func:`overrides_for_hydra`); flags stay as they are."""
    overrides = overrides_from_argv(argv)
    pending = list(zip(overrides, _for_each(overrides), strict=True))
    result: list[str] = []
    for arg in argv:
        if pending and arg == pending[0][0]:
            result.extend(pending.pop(0)[1])
        else:
            result.append(arg)
    return result


def _for_each(overrides: list[str]) -> list[list[str]]:
    """What each override becomes for Hydra (one or two overrides)."""
    overrides = quote_free_text(overrides)
    try:
        parsed = parsed_overrides(overrides)
    except ConfigError:
        return [[line] for line in overrides]  # reported by the check, or by Hydra
    return [
        rewritten_for_hydra([override], [line])
        for override, line in zip(parsed, overrides, strict=True)
    ]


def config_dirs_from_argv(argv: Sequence[str]) -> list[Path]:
    """The ``--config-dir``/``-cd`` folders named on a command line."""
    dirs = []
    for index, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and index + 1 < len(argv):
            dirs.append(Path(argv[index + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def overrides_from_argv(argv: Sequence[str]) -> list[str]:
    """The overrides on a ``scripts/run.py`` command line (flags and their values
    removed), parsed the way Hydra parses them."""
    try:
        args = parse_flags(argv, known_only=True)
    except FlagsError:  # Hydra reports it
        return []
    return list(args.overrides)


def full_error_requested() -> bool:
    """Whether ``HYDRA_FULL_ERROR=1`` asks for tracebacks."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
