"""Imports started early, in a thread, while the main thread waits on something else
that releases the GIL (pyarrow reading a file, torch's kernels training).

A command that trains on a million rows pays about 2 s importing torch, 2 s for the
compiler stack its first optimizer imports and half a second for matplotlib; done
beside the reading and training, they cost about a second less. The main thread's
own ``import`` of a module waits for the thread's (Python's per-module import
lock), and a failure here is left to that import to report.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable

__all__ = ["prefetch"]


def prefetch(*modules: str, then: Callable[[], object] | None = None) -> None:
    """Import ``modules`` (those not imported yet) in a thread, then call ``then``.

    Args:
        modules: Module names (``"torch"``, ``"matplotlib.figure"``).
        then: Called in the thread after the imports, to warm what an import alone
            does not (building a first optimizer); its errors are ignored too.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return

    def run() -> None:
        for name in missing:
            # Not installed, say: the next one still helps.
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
        if then is not None:
            with contextlib.suppress(BaseException):
                then()

    threading.Thread(target=run, name="annfactory-prefetch").start()
