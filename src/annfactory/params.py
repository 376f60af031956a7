"""Typed parameters of registry entries, and their validation (no torch here).

Every init, activation and layer type declares its parameters as :class:`Param`
objects. A config's values are checked against them before anything is built, so a
wrong value is reported with its config path and never reaches torch.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from annfactory.errors import ConfigError, RegistrationError, UnknownNameError

__all__ = [
    "AUTO",
    "REQUIRED",
    "Param",
    "check_keys",
    "params_from_arguments",
    "require_mapping",
    "validate_params",
]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


REQUIRED: Final[Any] = _Sentinel("REQUIRED")
"""Default of a parameter that the config must give."""

AUTO: Final[None] = None
"""Default of a parameter that may be ``null``; its ``doc`` says what null means."""

_KIND_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping",
    list: "a list of names",
}


@dataclass(frozen=True)
class Param:
    """One parameter of a registry entry.

    Args:
        kind: ``bool``, ``int``, ``float`` or ``str``; ``dict`` for a record of plain
            data that a layer is built from (``encode_table``'s ``columns``); ``list``
            for a list of names (``task.freeze=[hidden1]``), given as a tuple.
        default: The value used when the config omits it; :data:`REQUIRED` if it must be
            given; ``None`` (:data:`AUTO`) if it may be null.
        doc: One line that says what the parameter means, and for a parameter that
            may be null what null means, after ``null:`` (``"stop after this many
            epochs; null: never stop early"``): messages quote that part.
        choices: The allowed values of a string parameter.
        low: Smallest allowed value (numbers).
        high: Largest allowed value (numbers).
        low_open: ``low`` itself is not allowed.
        high_open: ``high`` itself is not allowed.
    """

    kind: type
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def auto(self) -> bool:
        return self.default is None

    @property
    def meaning(self) -> str:
        """What the parameter means: its doc without what null means."""
        return _doc_parts(self.doc)[0]

    @property
    def null_means(self) -> str:
        """What null means, from the doc's ``null: ...`` part (empty if unsaid)."""
        return _doc_parts(self.doc)[1]

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        else:
            text = _KIND_NAMES[self.kind]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
            if bounds:
                text += " " + " and ".join(bounds)
        if self.auto:
            text += f", or null ({self.null_means})" if self.null_means else ", or null"
        return text

    def validate(self, value: Any, key: str) -> Any:
        """Return ``value`` normalized to ``kind`` or raise :class:`ConfigError`."""
        if value is None:
            if self.auto:
                return None
            raise ConfigError(key, "is null.", f"Allowed: {self.allowed()}.")
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif self.kind is list:
            if isinstance(value, str):
                raise ConfigError(
                    key,
                    f"{value!r} is a name, not a list.",
                    f"Give a list in brackets: {key}=[{value}].",
                )
            ok = isinstance(value, list | tuple) and all(
                isinstance(item, str) and item for item in value
            )
            if ok:
                value = tuple(value)
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise ConfigError(
                key,
                f"{value!r} is not {_KIND_NAMES.get(self.kind, self.kind.__name__)}.",
                f"Allowed: {self.allowed()}.",
            )
        if self.kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(
                    key, f"{value!r} is not finite.", f"Allowed: {self.allowed()}."
                )
        if self.choices is not None and value not in self.choices:
            raise UnknownNameError(
                key, key.rpartition(".")[2] or "value", value, self.choices
            )
        if self.kind in (int, float) and not self._in_bounds(value):
            meaning = f" ({self.meaning})" if self.meaning else ""
            raise ConfigError(
                key,
                f"{value!r} is out of range.",
                f"Allowed: {self.allowed()}{meaning}.",
            )
        return value

    def _in_bounds(self, value: float) -> bool:
        if self.low is not None and (
            value < self.low or (self.low_open and value == self.low)
        ):
            return False
        return not (
            self.high is not None
            and (value > self.high or (self.high_open and value == self.high))
        )


def validate_params(
    given: Mapping[str, Any],
    schema: Mapping[str, Param],
    key: str,
    what: str,
) -> dict[str, Any]:
    """Check ``given`` against ``schema``; fill in defaults.

    Args:
        given: Parameter values from the config (without the entry's name key).
        schema: The entry's declared parameters.
        key: Config path of the node that holds the parameters.
        what: The entry, in words, e.g. ``"init 'normal'"``; used in messages.

    Returns:
        A new dict with every declared parameter, in declaration order.

    Raises:
        UnknownNameError: A parameter is not declared (names the closest one).
        ConfigError: A required parameter is missing or a value is not allowed.
    """
    check_keys(given, schema, key, "parameter", where=f" for {what}")
    values: dict[str, Any] = {}
    for name, param in schema.items():
        path = _join(key, name)
        if name in given:
            values[name] = param.validate(given[name], path)
        elif param.required:
            raise ConfigError(
                path, f"{what} needs {name!r}.", f"Set {path}= ({param.allowed()})."
            )
        else:
            values[name] = param.default
    return values


def check_keys(
    node: Iterable[Any],
    allowed: Collection[str],
    key: str,
    what: str,
    *,
    where: str = "",
) -> None:
    """Refuse a key of ``node`` that is not in ``allowed``, naming the closest one.

    The one rule for the keys of a node: :func:`validate_params` applies it, and so
    does the override check, which sees the keys one by one before Hydra composes.

    Args:
        node: A mapping node of the config, or the keys it sets.
        allowed: The keys it may have.
        key: Its config path (empty for the whole config).
        what: What a key is, in words (``"parameter"``, ``"layer key"``).
        where: Words after the key in the message (``" for init 'normal'"``).

    Raises:
        UnknownNameError: Names ``<key>.<name>``, the closest allowed key and all.
    """
    for name in node:
        if name not in allowed:
            raise UnknownNameError(
                _join(key, str(name)), what, name, allowed, where=where
            )


def params_from_arguments(
    arguments: Iterable[inspect.Parameter], what: str
) -> dict[str, Param]:
    """Parameters declared by the arguments of a registered function or class.

    Each argument's default gives its type (bool, int, float or str) and default; one
    without a default is required: an integer (at least 1) if its name ends in
    ``_features``, a number otherwise. ``*args`` and ``**kwargs`` are skipped.

    Args:
        arguments: The arguments, e.g. ``inspect.signature(f).parameters.values()``.
        what: The entry, in words, for messages (``"init 'scaled'"``).

    Raises:
        RegistrationError: A default of another type.
    """
    params: dict[str, Param] = {}
    for argument in arguments:
        if argument.kind in (argument.VAR_POSITIONAL, argument.VAR_KEYWORD):
            continue
        default = argument.default
        if default is inspect.Parameter.empty:
            sized = argument.name.endswith("_features")
            params[argument.name] = Param(
                int if sized else float, REQUIRED, low=1 if sized else None
            )
        elif isinstance(default, bool | int | float | str):
            params[argument.name] = Param(type(default), default)
        else:
            raise RegistrationError(
                f"{what}: parameter {argument.name!r} needs a default of type bool, "
                "int, float or str (or pass params={...} to register)"
            )
    return params


def require_mapping(
    node: Any, key: str, what: str = "a mapping", fix: str = "Give a mapping."
) -> Mapping[str, Any]:
    """``node`` itself if it is a mapping, else a :class:`ConfigError`.

    Args:
        node: A config node.
        key: Its config path (``""``: the root, named ``<root>``).
        what: What it should be, in words (``"a layer"``).
        fix: The message's hint.

    Raises:
        ConfigError: ``node`` is not a mapping: ``key: <node> is not <what>.``
    """
    if not isinstance(node, Mapping):
        raise ConfigError(key or "<root>", f"{node!r} is not {what}.", fix)
    return node


#: Where a parameter's doc says what null means: ``; null: ...``, ``(null: ...)``
#: or ``, or null: ...``, to the end or the closing parenthesis.
_NULL_MEANS: Final = re.compile(r"\s*[;(]?\s*(?:or )?null: ([^)]*)\)?")


def _doc_parts(doc: str) -> tuple[str, str]:
    """A parameter's doc split into what it means and what null means (empty when
    the doc does not say)."""
    match = _NULL_MEANS.search(doc)
    if match is None:
        return doc, ""
    meaning = (doc[: match.start()] + doc[match.end() :]).strip(" ;,")
    return meaning, match.group(1).strip()


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
