"""A command line whose reader goes away keeps running: ``annfactory ... | head -1``.

When the program that reads annfactory's output exits early (``head``, ``less``
quit before the end, a closed terminal), every later write to that stream raises
``BrokenPipeError``. Without a guard the first such write ends the run with a
traceback, before it saves anything. :func:`guard_output` wraps ``sys.stdout`` and
``sys.stderr`` so that a write to a reader that has gone is dropped instead: the run
goes on printing into nothing, saves all its files (``run.log`` holds the whole
report) and exits with its usual status, 0 for a run that succeeded.

0 rather than the 141 (128 + SIGPIPE) of a shell tool killed by the signal: the run
did all it was asked to do, and only its echo on the terminal was cut short.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import TextIO

__all__ = ["ReaderSafeStream", "guard_output"]


class ReaderSafeStream(io.TextIOBase):
    """A text stream that passes writes on to ``stream`` until its reader has gone,
    then drops them.

    On the first ``BrokenPipeError`` (or ``EPIPE``) the stream's file descriptor is
    pointed at ``os.devnull``, so that what is still buffered, the interpreter's own
    flush at exit, and any code holding the raw descriptor write into nothing too.

    Args:
        stream: The stream to guard (``sys.stdout`` or ``sys.stderr``).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except OSError as error:
                self._check_reader_gone(error)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as error:
                self._check_reader_gone(error)

    def _check_reader_gone(self, error: OSError) -> None:
        """Re-raise ``error`` unless it says that the reader has gone."""
        if not isinstance(error, BrokenPipeError) and error.errno != errno.EPIPE:
            raise error
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # no descriptor of its own (a StringIO): writes are dropped here

    # What code that prints asks of a stream, answered by the guarded one.
    def isatty(self) -> bool:
        return not self.reader_gone and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        """Flushes; the guarded stream stays open (it belongs to the interpreter)."""
        self.flush()

    @property
    def closed(self) -> bool:
        return bool(self._stream.closed)

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only here
        return str(getattr(self._stream, "encoding", "utf-8"))

    @property
    def errors(self) -> str | None:  # type: ignore[override]  # read-only here
        return getattr(self._stream, "errors", None)

    @property
    def stream(self) -> TextIO:
        """The guarded stream."""
        return self._stream


def guard_output() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`ReaderSafeStream` (once).

    Called by the command line before Hydra starts, and by each job, which may run
    in a worker process of a parallel launcher that shares the terminal's pipe.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ReaderSafeStream):
            setattr(sys, name, ReaderSafeStream(stream))
