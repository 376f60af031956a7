"""Overrides as Hydra must receive them: parsed by Hydra's grammar (an error names
the override), non-ASCII free text quoted (:func:`quote_free_text`), and a mapping
that names a slot's option turned into a replacement (:func:`overrides_for_hydra`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from annfactory.config.rendering import rerender
from annfactory.errors import (
    ConfigError,
    ascii_lookalike,
    non_ascii_character,
)
from annfactory.fixes import shell_word as _shell
from annfactory.groups import (
    CHOICE_SLOTS,
    groups,
    layer_slots,
)

if TYPE_CHECKING:
    pass


def overrides_for_hydra(overrides: Sequence[str] | str) -> list[str]:
    """The overrides as Hydra must receive them to do what they say.

    A mapping with a ``name`` set on an activation or init slot
    (``model.layers.linear1.activation={name: elu, alpha: 0.3}``, with or without
    ``+``/``++``) replaces what the slot held, as a name alone does. Hydra would merge
    it into the option there: refused under ``=`` (the new option's parameters are
    not the old one's keys), and under ``++`` the old option's parameters would stay.
    It becomes ``++key=null ++key={...}``; ``++activation={...}`` for the top-level
    groups. Every other override is passed on as written.
    """
    overrides = quote_free_text(overrides)
    return rewritten_for_hydra(parsed_overrides(overrides), overrides)


def rewritten_for_hydra(parsed: list[Any], overrides: list[str]) -> list[str]:
    result: list[str] = []
    for override, line in zip(parsed, overrides, strict=True):
        if not replaces_slot(override):
            result.append(line)
            continue
        key = override.key_or_group
        value = value_text(override, line)
        if "." not in key:
            # The top-level init and activation are config groups, which Hydra does
            # not let ++ set to null; they are absent unless a group option is chosen.
            result.append(f"++{key}={value}")
        else:
            result.extend([f"++{key}=null", f"++{key}={value}"])
    return result


def replaces_slot(override: Any) -> bool:
    """A mapping that names an option, set on an activation or init slot."""
    if override.package is not None or override.is_delete():
        return False
    if override.is_sweep_override():
        return False
    value = override.value()
    if not (isinstance(value, dict) and "name" in value):
        return False
    key = str(override.key_or_group)
    if "." not in key:
        # A top-level group whose node is a choice (init, activation).
        return key in groups and groups.get(key).choice
    return key.startswith("model.") and key.endswith(layer_slots())


def value_text(override: Any, line: str) -> str:
    """The value of an override as the user wrote it."""
    key = override.get_key_element()
    if line.startswith(f"{key}="):
        return line[len(key) + 1 :]
    return str(override.get_value_element_as_str())


def quote_free_text(overrides: Sequence[str] | str) -> list[str]:
    """The overrides, with non-ASCII free text quoted for Hydra's grammar.

    Hydra's grammar takes only ASCII in an unquoted value, but a path, a column name
    or a directory may be in any script (``data.target=ラベル``): where the value of
    such a key is refused for a non-ASCII character, its text is quoted
    (``data.target='ラベル'``). Names of registry entries stay as written, so that a
    look-alike letter there (``activation=relu`` typed with a Cyrillic e) is
    reported.
    """
    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    return [_quoted_text(line) or line for line in overrides]


def _quoted_text(line: str) -> str | None:
    """``line`` with its non-ASCII text quoted, or None if it is left as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if line.isascii():
        return None
    key, equals, value = line.partition("=")
    name = key.lstrip("+~")
    if not equals or "@" in name or not name.isascii() or not _holds_text(name):
        return None
    parser = OverridesParser.create()
    try:
        parser.parse_overrides([line])
        return None  # already quoted where it must be
    except HydraException:
        pass
    # Each element quoted (a list, a sweep, choice(...)): [größe, höhe] ->
    # ['größe', 'höhe']; else the whole value (a path with a colon or parentheses).
    for quoted in (_ELEMENT.sub(_quote_element, value), _quote_element(value)):
        candidate = f"{key}={quoted}"
        try:
            parser.parse_overrides([candidate])
        except HydraException:
            continue
        return candidate
    return None  # something else is wrong: reported as it is


#: An unquoted element of a value, a list, a mapping or a sweep: the text between
#: separators.
_ELEMENT = re.compile(r"""(?:^|(?<=[\[{(,:]))[^\[\]{}(),:'"]+(?=[\]}),:]|$)""")


def _quote_element(match: re.Match[str] | str) -> str:
    text = match if isinstance(match, str) else match.group()
    core = text.strip()
    if core.isascii() or (("'" in core) and ('"' in core)):
        return text
    quote = '"' if "'" in core else "'"
    return text.replace(core, f"{quote}{core}{quote}", 1)


def _holds_text(key: str) -> bool:
    """Whether the value at ``key`` is free text: a directory of Hydra's
    (``hydra.run.dir``), or a string option of a group's entries that names no
    registry entry (``data.path``, ``data.target``, ``data.features``,
    ``task.run``)."""
    if key.startswith("hydra."):
        return True
    group_name, dot, option = key.partition(".")
    if not dot or "." in option or option in CHOICE_SLOTS:
        return False
    group = groups.get(group_name) if group_name in groups else None
    registry = group.options() if group is not None else None
    if registry is None:
        return False
    for _, entry in registry.items():
        param = getattr(entry, "params", {}).get(option)
        if param is not None and param.kind is str and param.choices is None:
            return True
    return False


def parsed_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's parse of the overrides; an error names the override that fails."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        return list(parser.parse_overrides(overrides))
    except HydraException as error:
        for line in overrides:
            try:
                parser.parse_overrides([line])
            except HydraException as own:
                raise _unparsable(line, own) from own
        raise rerender(error) from error


def _unparsable(line: str, error: Exception) -> ConfigError:
    """The error for an override that Hydra's grammar rejects."""
    key, equals, value = line.partition("=")
    key = key.lstrip("+~") or line
    if value.startswith("~") and _holds_text(key):
        # The shell expands ~ only at the start of a word, and Hydra's grammar
        # refuses it unquoted: give the path the user meant, where it is one that
        # works (Hydra's directories are made; a file to read must exist).
        expanded = os.path.expanduser(value)
        problem = (
            f"{value!r}: '~' is not expanded here (the shell expands it only at the "
            "start of a word)"
        )
        if key.startswith("hydra.") or os.path.exists(expanded):
            return ConfigError(
                key,
                f"{problem}.",
                f"Give the absolute path: {_shell(f'{key}={expanded}')}",
            )
        return ConfigError(
            key,
            f"{problem}, and {expanded}, what it would name, does not exist either.",
            "Give the absolute path of an existing file.",
        )
    odd = non_ascii_character(line)
    if odd is not None:
        # Unquoted names must be ASCII in Hydra's grammar: a look-alike letter
        # (a Cyrillic i in "sigmoid") is the usual cause.
        where = f"the key {key!r}" if non_ascii_character(key) else repr(value)
        fixed = ascii_lookalike(line)
        return ConfigError(
            key,
            f"{where} contains the non-ASCII character {odd}.",
            f"Type it in ASCII: {_shell(fixed)}"
            if fixed.isascii()
            else "Type it in ASCII.",
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if reason.startswith("LexerNoViableAltException") or not reason:
        reason = "a character is not allowed there"
    return ConfigError(
        key if equals else line,
        f"cannot parse the override {line!r}: {reason}.",
        "Write key=value, and quote a value with spaces, commas or brackets, "
        "inside the shell's quotes: \"key='a, b'\".",
    )


def override_values(override: Any) -> list[str | None]:
    if override.is_sweep_override():
        if override.is_choice_sweep():
            return [
                None if v == "null" else v for v in override.sweep_string_iterator()
            ]
        return []
    value = override.value()
    return [value if isinstance(value, str) or value is None else str(value)]


def override_key(override: Any) -> str:
    if override.package:
        return f"{override.key_or_group}@{override.package}"
    return str(override.key_or_group)
