"""Fixes that messages suggest, written as command-line words a user can paste.

A message (:class:`~annfactory.errors.ConfigError`) says what is wrong on its first
line and how to fix it on the next. Where the fix is a command, its hint writes it as
overrides, by this convention, which :func:`suggested_commands` reads back:

- each override is one shell word: ``key=value``, ``+key=value``, ``~key`` or
  ``group@key=option``, single-quoted where the shell would split or expand it
  (:func:`shell_word`: ``'+model.layers.flat={type: flatten}'``);
- overrides next to each other are one command, applied together; prose between
  them separates alternatives (``Use data=digits, or model=mlp for these rows``);
- a word with ``<...>`` is a template to fill in (``data=<name>``), and a command
  right after ``e.g.`` an example: neither is a command to run as it stands;
- a hint that says ``instead`` (``Use task.batch_size=7 instead.``) means that its
  command takes the place of the override the message names (its key).

Every command a message suggests works as written: applied to the command line
(appended, an earlier setting of the same key replaced), it runs, or it stops at
another problem, never at the same one again. ``tests/test_suggestions.py`` follows
the suggestions of the bad-input corpus to check that.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "apply_command",
    "command",
    "flow",
    "override_key",
    "shell_word",
    "suggested_commands",
]

#: Characters that need no quotes in a shell word.
_SHELL_SAFE: Final = re.compile(r"[\w@%+=:,./~-]+")
#: An override as one word: ``[~|+|++]key[@path][=value]``.
_OVERRIDE: Final = re.compile(r"(~|\+\+|\+)?([A-Za-z_][\w.@/-]*)(=.*)?", re.DOTALL)
#: A word of a hint: a single-quoted shell word (a quote that opens a word, not the
#: apostrophe of "layer's"), or a run of non-blanks.
_WORD: Final = re.compile(r"(?<![\w'])'[^']*'(?=[\s.,;:)]|$)|\S+")
#: Punctuation of the prose around a bare word.
_TRAILING: Final = ".,;:)"
#: A plain string that Hydra's override grammar reads as itself, unquoted.
_PLAIN: Final = re.compile(r"[A-Za-z_][\w.-]*")


def shell_word(text: str) -> str:
    """``text`` as one shell word: quoted where the shell would split or expand it
    (spaces, braces, brackets, quotes)."""
    return text if _SHELL_SAFE.fullmatch(text) else shlex.quote(text)


def command(*overrides: str) -> str:
    """Overrides as a command a user can paste: shell words joined by spaces."""
    return " ".join(shell_word(override) for override in overrides)


def flow(value: Any) -> str:
    """``value`` as an override's value: ``{type: linear, out_features: 10}``.

    Mappings and lists in YAML flow style, None as ``null``, booleans as
    ``true``/``false``; a string that the override grammar would not read as itself
    is quoted.
    """
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value not in ("null", "true", "false")
        return value if plain else repr(value)
    return str(value)


def override_key(override: str) -> str | None:
    """The config path an override sets: ``model.in_features`` for
    ``+model.in_features=4``, ``model.layers.x.weight_init`` for
    ``init@model.layers.x.weight_init=zeros``, ``init`` for ``init@=zeros``; None if
    the word is no override."""
    found = _OVERRIDE.fullmatch(override)
    if found is None:
        return None
    group, _, path = found.group(2).partition("@")
    return path or group


def suggested_commands(hint: str, roots: Iterable[str]) -> list[list[str]]:
    """The commands a message's hint suggests, by the convention of this module.

    Args:
        hint: The lines of the message after its first.
        roots: The first parts of the config paths and groups an override may name
            (``model``, ``init``, ``layer``, ``hydra``, ...): ``key=value`` in prose
            is no override of this application.

    Returns:
        The alternatives, each a list of overrides (unquoted) to apply together.
    """
    known = set(roots)
    commands: list[list[str]] = []
    current: list[str] = []
    example = False
    for token in _WORD.findall(hint):
        word = _unquote(token)
        if word is not None and _is_override(word, known):
            if not example:
                current.append(word)
            continue
        if current:
            commands.append(current)
        current = []
        example = token.lower().startswith("e.g.")
    if current:
        commands.append(current)
    return commands


def _unquote(token: str) -> str | None:
    if token.startswith("'") and token.endswith("'") and len(token) > 1:
        try:
            words = shlex.split(token)
        except ValueError:
            return None
        return words[0] if len(words) == 1 else None
    return token.lstrip("(").rstrip(_TRAILING)


def _is_override(word: str, roots: set[str]) -> bool:
    found = _OVERRIDE.fullmatch(word)
    if found is None or "<" in word or ">" in word:
        return False
    deletion, key, value = found.group(1) == "~", found.group(2), found.group(3)
    if value is None and not deletion:
        return False
    root = re.split(r"[.@/]", key, maxsplit=1)[0]
    return root in roots


def apply_command(
    overrides: Sequence[str], suggestion: Sequence[str], replaces: str | None = None
) -> list[str]:
    """The command line with a suggestion applied as a user would.

    Its overrides are appended. An earlier override of one of their keys is left
    out: a setting (``key=...``, ``+key=...``) of a key the suggestion sets or
    deletes, a deletion (``~key=3``) of a key it deletes (``~key``); a deletion
    stays before a suggestion that adds the key back. With ``replaces`` (the key of
    a message whose hint says ``instead``), the overrides of that key are left out
    too.
    """
    sets = {override_key(word) for word in suggestion if not word.startswith("~")}
    deletes = {override_key(word) for word in suggestion if word.startswith("~")}

    def replaced(word: str) -> bool:
        key = override_key(word)
        if key is not None and key == replaces:
            return True
        return key in (deletes if word.startswith("~") else sets | deletes)

    return [*(word for word in overrides if not replaced(word)), *suggestion]
