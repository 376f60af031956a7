"""annfactory's errors in Hydra's words: a message alone, without a traceback.

Hydra prints an exception that derives from its ``CompactHydraException`` as its
message alone and exits non-zero; it prints any other with a traceback.
:mod:`annfactory.errors` stays free of Hydra, so its errors are translated here, at
the edge where Hydra calls annfactory's code: the task function and the sweepers
(:func:`reported`). ``HYDRA_FULL_ERROR=1`` shows the chain, the original error
included.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from hydra.errors import CompactHydraException

from annfactory.errors import AnnFactoryError

__all__ = ["ReportedError", "reported"]

P = ParamSpec("P")
R = TypeVar("R")


class ReportedError(CompactHydraException):
    """An :class:`~annfactory.errors.AnnFactoryError` on its way to Hydra, which
    prints its message alone; the original is its ``__cause__``."""


def reported(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` with each :class:`~annfactory.errors.AnnFactoryError` it raises
    raised again as a :class:`ReportedError` of the same message."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except AnnFactoryError as error:
            raise ReportedError(str(error)) from error

    return wrapper
