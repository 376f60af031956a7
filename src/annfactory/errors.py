"""The annfactory exception hierarchy.

Every error that annfactory raises on purpose derives from :class:`AnnFactoryError`.
Each subclass also inherits the builtin exception it resembles, so callers can catch
``ValueError`` or ``LookupError`` as they would elsewhere.

Nothing here imports Hydra: where Hydra calls annfactory's code (the task function,
the sweepers), :func:`annfactory.hydra_report.reported` raises each of these errors
again as one that Hydra prints as its message alone, without a traceback, exiting
non-zero. ``HYDRA_FULL_ERROR=1`` shows the full chain.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

__all__ = [
    "AnnFactoryError",
    "ConfigError",
    "DeviceError",
    "MemoryLimitError",
    "RegistrationError",
    "UnknownNameError",
    "ascii_lookalike",
    "closest_name",
    "non_ascii_character",
]


class AnnFactoryError(Exception):
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
    """A name is not registered (layer type, activation, init, model, parameter).

    A name with a non-ASCII character that looks like an ASCII one (``sigmoid`` spelled
    with a Cyrillic ``i``) says so and suggests the ASCII spelling; a dotted name
    (``os.system``) says that configs name registered entries, never import paths.

    Args:
        key: The config path of the name.
        kind: What the name names, in words (``"activation"``).
        value: The name as given.
        valid: The valid names.
        where: Words after the name in the message (``" for init 'normal'"``).
        advice: One sentence after the valid names: another way to fix it.
        note: A line of its own before the valid names: something else that went
            wrong on the way (a plugin that failed to load).
    """

    def __init__(
        self,
        key: str,
        kind: str,
        value: object,
        valid: Iterable[str],
        *,
        where: str = "",
        advice: str = "",
        note: str = "",
    ) -> None:
        valid = sorted(valid)
        self.kind = kind
        self.value = value
        self.valid = valid
        suggestion = closest_name(value, valid)
        message = f"unknown {kind} {value!r}{where}"
        odd = non_ascii_character(value) if isinstance(value, str) else None
        if odd is not None:
            message += f": it contains the non-ASCII character {odd}"
        elif isinstance(value, str) and "." in value and kind in _IMPORTABLE:
            message += ": configs name registered entries, never import paths"
        message += "."
        if suggestion is not None:
            message += f" Did you mean {suggestion!r}?"
        hint = (
            f"Valid {_plural(kind)}: {', '.join(valid)}."
            if valid
            else f"No {kind} exists."
        )
        if advice:
            hint = f"{hint[:-1]}; {advice}"
        if note:
            hint = f"{note}\n  {hint}"
        self.note = note
        super().__init__(key, message, hint)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str | None]]:
        # Rebuild as a plain ConfigError with the same text: enough for reporting.
        return (ConfigError, (self.key, self.problem, self.hint))


#: Kinds of names that a config could mistake for import paths.
_IMPORTABLE = ("layer type", "activation", "init")


class RegistrationError(AnnFactoryError, ValueError):
    """A registry entry cannot be added (a taken name, a malformed entry)."""


class DeviceError(ConfigError, RuntimeError):
    """The requested device or dtype is not usable on this machine."""


class MemoryLimitError(ConfigError, MemoryError):
    """The network's parameters and buffers would not fit in the device's memory.

    Raised before anything is allocated, from the sizes the spec gives.
    """


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def closest_name(value: object, valid: Iterable[str]) -> str | None:
    """Return the valid name closest to ``value``, or None if nothing is close.

    A name typed with look-alike characters (a Cyrillic ``i``, full-width
    letters) is compared in its ASCII spelling first.
    """
    if not isinstance(value, str):
        return None
    choices = list(valid)
    if not value.isascii():
        plain = ascii_lookalike(value)
        if plain in choices:
            return plain
        value = plain
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


def non_ascii_character(text: str) -> str | None:
    """The first non-ASCII character of ``text``, described, or None if there is none.

    Example:
        >>> non_ascii_character("s\u0456gmoid")
        "'\u0456' (U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I)"
    """
    for character in text:
        if not character.isascii():
            name = unicodedata.name(character, "unnamed character")
            return f"{character!r} (U+{ord(character):04X} {name})"
    return None


def ascii_lookalike(text: str) -> str:
    """``text`` with look-alike characters replaced by the ASCII ones they resemble.

    Full-width forms and ligatures are normalized (NFKC), Cyrillic and Greek letters
    that look like Latin ones are replaced, and accents are dropped. Characters with no
    ASCII look-alike stay as they are.
    """
    text = unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _lookalike_table() -> dict[int, str]:
    """Code point -> ASCII, from the Unicode names in ``_LOOKALIKE_NAMES``."""
    return {
        ord(unicodedata.lookup(name)): ascii_text
        for ascii_text, names in _LOOKALIKE_NAMES.items()
        for name in names.split(", ")
    }


#: Letters and dashes that are easily taken for ASCII ones, by their Unicode names
#: (names rather than the characters themselves, which would look like ASCII here).
_CYRILLIC, _GREEK = "CYRILLIC SMALL LETTER", "GREEK SMALL LETTER"
_CYRILLIC_CAPITAL, _GREEK_CAPITAL = "CYRILLIC CAPITAL LETTER", "GREEK CAPITAL LETTER"
_LOOKALIKE_NAMES: dict[str, str] = {
    "a": f"{_CYRILLIC} A, {_GREEK} ALPHA",
    "c": f"{_CYRILLIC} ES",
    "d": f"{_CYRILLIC} KOMI DE",
    "e": f"{_CYRILLIC} IE, {_GREEK} EPSILON",
    "h": f"{_CYRILLIC} SHHA",
    "i": f"{_CYRILLIC} BYELORUSSIAN-UKRAINIAN I, {_GREEK} IOTA, "
    "LATIN SMALL LETTER DOTLESS I",
    "j": f"{_CYRILLIC} JE",
    "k": f"{_GREEK} KAPPA",
    "n": f"{_GREEK} ETA",
    "o": f"{_CYRILLIC} O, {_GREEK} OMICRON",
    "p": f"{_CYRILLIC} ER, {_GREEK} RHO",
    "q": f"{_CYRILLIC} QA",
    "s": f"{_CYRILLIC} DZE",
    "u": f"{_GREEK} UPSILON",
    "v": f"{_GREEK} NU",
    "w": f"{_CYRILLIC} WE",
    "x": f"{_CYRILLIC} HA, {_GREEK} CHI",
    "y": f"{_CYRILLIC} U",
    "A": f"{_CYRILLIC_CAPITAL} A, {_GREEK_CAPITAL} ALPHA",
    "B": f"{_CYRILLIC_CAPITAL} VE, {_GREEK_CAPITAL} BETA",
    "C": f"{_CYRILLIC_CAPITAL} ES",
    "E": f"{_CYRILLIC_CAPITAL} IE, {_GREEK_CAPITAL} EPSILON",
    "H": f"{_CYRILLIC_CAPITAL} EN, {_GREEK_CAPITAL} ETA",
    "I": f"{_CYRILLIC_CAPITAL} BYELORUSSIAN-UKRAINIAN I, {_GREEK_CAPITAL} IOTA",
    "J": f"{_CYRILLIC_CAPITAL} JE",
    "K": f"{_CYRILLIC_CAPITAL} KA, {_GREEK_CAPITAL} KAPPA",
    "M": f"{_CYRILLIC_CAPITAL} EM, {_GREEK_CAPITAL} MU",
    "N": f"{_GREEK_CAPITAL} NU",
    "O": f"{_CYRILLIC_CAPITAL} O, {_GREEK_CAPITAL} OMICRON",
    "P": f"{_CYRILLIC_CAPITAL} ER, {_GREEK_CAPITAL} RHO",
    "S": f"{_CYRILLIC_CAPITAL} DZE",
    "T": f"{_CYRILLIC_CAPITAL} TE, {_GREEK_CAPITAL} TAU",
    "X": f"{_CYRILLIC_CAPITAL} HA, {_GREEK_CAPITAL} CHI",
    "Y": f"{_CYRILLIC_CAPITAL} U, {_GREEK_CAPITAL} UPSILON",
    "Z": f"{_GREEK_CAPITAL} ZETA",
    "-": "HYPHEN, NON-BREAKING HYPHEN, FIGURE DASH, EN DASH, EM DASH, MINUS SIGN",
}

_LOOKALIKES = _lookalike_table()
