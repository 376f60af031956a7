"""The annfactory exception hierarchy.

Every error that annfactory raises on purpose derives from :class:`AnnFactoryError`.
Each subclass also inherits the builtin exception it resembles, so callers can catch
``ValueError`` or ``LookupError`` as they would elsewhere.

``AnnFactoryError`` derives from Hydra's ``CompactHydraException``: when one escapes a
Hydra task function, Hydra prints its message alone, without a traceback, and exits
non-zero. ``HYDRA_FULL_ERROR=1`` shows the full chain.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from hydra.errors import CompactHydraException

__all__ = [
    "AnnFactoryError",
    "ConfigError",
    "DeviceError",
    "RegistrationError",
    "UnknownNameError",
    "closest_name",
]


class AnnFactoryError(CompactHydraException):
    """Root of every error that annfactory raises on purpose."""


class ConfigError(AnnFactoryError, ValueError):
    """A config value is wrong: the message names its path, the value and the fix.

    Args:
        key: The full config path of the bad value, e.g. ``model.layers.out.bias_init``.
        message: What is wrong, in one line.
        hint: How to fix it, in one line (optional).
    """

    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        self.key = key
        self.problem = message
        self.hint = hint
        text = f"{key}: {message}" if key else message
        if hint:
            text += f"\n  {hint}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str | None]]:
        # Keep errors picklable across process-based launchers.
        return (type(self), (self.key, self.problem, self.hint))


class UnknownNameError(ConfigError, LookupError):
    """A name is not registered (layer type, activation, init, model, parameter)."""

    def __init__(
        self,
        key: str,
        kind: str,
        value: object,
        valid: Iterable[str],
        *,
        where: str = "",
    ) -> None:
        valid = sorted(valid)
        self.kind = kind
        self.value = value
        self.valid = valid
        suggestion = closest_name(value, valid)
        message = f"unknown {kind} {value!r}{where}."
        if suggestion is not None:
            message += f" Did you mean {suggestion!r}?"
        hint = (
            f"Valid {_plural(kind)}: {', '.join(valid)}."
            if valid
            else f"No {kind} exists."
        )
        super().__init__(key, message, hint)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str | None]]:
        # Rebuild as a plain ConfigError with the same text: enough for reporting.
        return (ConfigError, (self.key, self.problem, self.hint))


class RegistrationError(AnnFactoryError, ValueError):
    """A registry entry cannot be added (a taken name, a malformed entry)."""


class DeviceError(ConfigError, RuntimeError):
    """The requested device or dtype is not usable on this machine."""


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def closest_name(value: object, valid: Iterable[str]) -> str | None:
    """Return the valid name closest to ``value``, or None if nothing is close."""
    if not isinstance(value, str):
        return None
    choices = list(valid)
    matches = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if not matches:
        # Case and separator slips ("Kaiming-Normal") are common on the command line.
        folded = {name.lower().replace("-", "_"): name for name in choices}
        key = value.lower().replace("-", "_")
        if key in folded:
            return folded[key]
        matches = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
        return folded[matches[0]] if matches else None
    return matches[0]
