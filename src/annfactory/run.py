"""annfactory's command line, before Hydra takes over: checks of the flags.

Hydra stops with a ``ValueError`` traceback when a command line combines flags that
each choose what the command does (``-m --cfg job``); :func:`check_command_flags` says
so in two lines instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["check_command_flags", "parse_hydra_flags"]

#: Hydra's flags that each choose what the command does; Hydra takes one at most.
_COMMAND_FLAGS = {
    "run": "--run",
    "multirun": "-m/--multirun",
    "cfg": "--cfg",
    "info": "--info",
    "shell_completion": "--shell-completion",
}


class _UnparsableError(Exception):
    """argparse rejected the command line; Hydra reports that itself."""


def parse_hydra_flags(argv: Sequence[str]) -> argparse.Namespace | None:
    """``argv`` parsed by Hydra's own parser, or None if it rejects them (Hydra then
    prints the usage; printing it here too would show it twice)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def reject(message: str) -> NoReturn:
        raise _UnparsableError(message)

    parser.error = reject  # type: ignore[method-assign]
    parser.exit_on_error = False
    try:
        return parser.parse_args(list(argv))
    except (_UnparsableError, argparse.ArgumentError):
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
