"""Choices: a registered name with parameters (an activation, an init), parsed from a
config node; and the refusal of ``_target_`` keys, which configs never import or call.

Below :mod:`annfactory.layer_spec`, which resolves each layer's choices with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from annfactory.errors import ConfigError
from annfactory.groups import CHOICE_SLOTS
from annfactory.inits import InitScheme, Nonlinearity, inits
from annfactory.layers import layers
from annfactory.params import validate_params
from annfactory.registry import Registry
from annfactory.spec_types import InitSpec

__all__ = ["lookup", "parse_choice", "parse_init", "reject_targets"]


def parse_choice(registry: Registry[Any], node: Any, key: str, cls: type[Any]) -> Any:
    """A registry name with parameters: a string, or a mapping with ``name``.

    Args:
        registry: The registry the name is looked up in.
        node: The config node.
        key: Its config path.
        cls: The spec to make, e.g. :class:`ActivationSpec`:
            ``cls(name=..., params=...)``.

    Raises:
        ConfigError: The node is not a name or a mapping with a name, the name is
            not registered (naming the closest), or a parameter is not valid.
    """
    if isinstance(node, str):
        name, given, name_key = node, {}, key
    elif isinstance(node, Mapping):
        if "_target_" in node:  # parse_network refuses it first; kept for direct calls
            reject_targets(node, key)
        given = {k: v for k, v in node.items() if k != "name"}
        if "name" not in node:
            raise ConfigError(
                f"{key}.name",
                f"no {registry.kind} is named.",
                f"Set {key}=<name> (valid: {', '.join(registry.names())}).",
            )
        name, name_key = node["name"], f"{key}.name"
    else:
        raise ConfigError(
            key,
            f"{node!r} is not a {registry.kind} name or mapping.",
            f"Use one of: {', '.join(registry.names())}.",
        )
    entry = lookup(registry, name, name_key)
    params = validate_params(given, entry.params, key, f"{registry.kind} {name!r}")
    return cls(name=name, params=params)


def parse_init(node: Any, key: str, nonlinearity: Nonlinearity) -> InitSpec:
    """An init choice, its ``null`` gains resolved for the layer's nonlinearity.

    Args:
        node: The config node: an init name or a mapping with ``name``.
        key: Its config path.
        nonlinearity: The layer's activation, as ``calculate_gain`` takes it.

    Raises:
        ConfigError: As :func:`parse_choice`, or the init's parameters do not fit
            together.
    """
    choice: InitSpec = parse_choice(inits, node, key, InitSpec)
    scheme: InitScheme = inits.get(choice.name)
    params = dict(choice.params)
    if scheme.resolve_auto is not None:
        params = scheme.resolve_auto(params, nonlinearity)
    if scheme.check is not None:
        problem = scheme.check(params)
        if problem:
            raise ConfigError(
                key, f"init {choice.name!r} {problem}.", "Fix its parameters."
            )
    return InitSpec(choice.name, params)


def lookup(registry: Registry[Any], name: Any, key: str) -> Any:
    """The entry ``name`` of ``registry``, after checking it is a string."""
    if not isinstance(name, str):
        raise ConfigError(
            key,
            f"{name!r} is not a {registry.kind} name.",
            f"Use one of: {', '.join(registry.names())}.",
        )
    return registry.get(name, key=key)


_TARGET: Final = "_target_"
#: Slots that name an activation or an init, by the last part of their config path.
_CHOICE_SLOTS: Final = CHOICE_SLOTS


def reject_targets(node: Any, key: str) -> None:
    """Refuse a ``_target_`` key anywhere in ``node``, before anything is looked up.

    Hydra's ``instantiate`` would import and call what it names; annfactory builds
    only registered entries and never reads it.
    """
    if isinstance(node, Mapping):
        if _TARGET in node:
            raise _target_error(key)
        for name, child in node.items():
            reject_targets(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            reject_targets(child, f"{key}[{index}]")


def _target_error(key: str) -> ConfigError:
    parent, _, last = key.rpartition(".")
    registry = _CHOICE_SLOTS.get(last)
    if registry is not None:
        hint = f"Use {key}.name with one of: {', '.join(registry.names())}."
    elif parent.endswith(".layers") or parent == "layers":
        hint = f"Use {key}.type with one of: {', '.join(layers.names())}."
    else:
        hint = "Remove it; configs name registered layer types, activations and inits."
    return ConfigError(
        f"{key}.{_TARGET}" if key else _TARGET,
        f"configs name registered entries; {_TARGET} is never imported or called.",
        hint,
    )
