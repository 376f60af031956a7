"""Plugins: packages that add layers, activations and inits without touching annfactory.

A plugin package declares an entry point in the group ``annfactory.plugins``, e.g. in
its ``pyproject.toml``::

    [project.entry-points."annfactory.plugins"]
    my_pkg = "my_pkg.annfactory_plugin"

The value names a module, whose import registers entries (``@annfactory.inits.register``
and the like), or a callable (``"my_pkg.annfactory_plugin:register"``), called with no
arguments. annfactory loads all plugins the first time a registry look-up misses (see
:class:`~annfactory.registry.Registry`'s ``on_miss``), once per process: importing
annfactory and looking up registered names never scans the entry points.

This module imports nothing of annfactory but its errors, so any module may use it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from annfactory.errors import RegistrationError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "load_plugins", "reset"]

ENTRY_POINT_GROUP = "annfactory.plugins"
"""The entry-point group that plugin packages declare."""


class _State:
    """What this process has loaded (one instance, guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded: list[str] | None = None  # None: not scanned yet
        # Each failed plugin: what failed, how to fix it, the original error.
        self.failures: list[tuple[str, str, Exception]] = []
        self.loading = False


_state = _State()


def load_plugins() -> list[str]:
    """Load every ``annfactory.plugins`` entry point, once per process.

    This is the registries' default ``on_miss`` hook. A plugin that fails does not
    stop the others from loading. Later calls load nothing and return the same names,
    or raise the same error if a plugin failed: a look-up of a missing name raises it
    each time, since the name may be the broken plugin's. A call made while loading (a
    plugin that looks up a name it has not registered) loads nothing and returns [].

    Returns:
        The names of the entry points that loaded, in the order they loaded.

    Raises:
        RegistrationError: A plugin failed to import or raised; the message names the
            entry point, its value and the original error, which is chained.
    """
    with _state.lock:
        if _state.loaded is None and not _state.loading:
            _state.loading = True
            try:
                _state.loaded, _state.failures = _load_all()
            finally:
                _state.loading = False
        loaded = list(_state.loaded or [])
        failures = list(_state.failures)
    if failures:
        problem, fix, cause = failures[0]
        more = len(failures) - 1
        if more:
            problem += f" ({more} more plugin{'s' if more > 1 else ''} failed too)"
        raise RegistrationError(f"{problem}\n  {fix}") from cause
    return loaded


def reset() -> None:
    """Forget which plugins were loaded, so the next miss loads them again.

    For tests. It neither unregisters the plugins' entries nor unimports their
    modules: restore the registries (``Registry.snapshot``/``restore``) and remove
    the modules from ``sys.modules`` as well, or a second load registers nothing.
    """
    with _state.lock:
        _state.loaded = None
        _state.failures = []


def _load_all() -> tuple[list[str], list[tuple[str, str, Exception]]]:
    from importlib.metadata import entry_points

    loaded: list[str] = []
    failures: list[tuple[str, str, Exception]] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _load_one(entry_point)
        except Exception as error:  # a plugin's bug must not break annfactory
            failures.append((*_describe_failure(entry_point, error), error))
        else:
            loaded.append(entry_point.name)
    return loaded, failures


def _load_one(entry_point: EntryPoint) -> None:
    target = entry_point.load()
    if entry_point.attr is None:
        return  # a module: importing it registered its entries
    if not callable(target):
        kind = type(target).__name__
        raise TypeError(f"{entry_point.attr} is not callable (type {kind})")
    target()


def _describe_failure(entry_point: EntryPoint, error: Exception) -> tuple[str, str]:
    """What failed (one line) and how to fix it (one line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    if len(reason) > 200:
        reason = reason[:197] + "..."
    dist = entry_point.dist
    package = f"{dist.name} {dist.version}" if dist is not None else "its package"
    return (
        f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {reason}",
        "annfactory loads its plugins when a registry lacks a name; fix or uninstall "
        f"{package}.",
    )
