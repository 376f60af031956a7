"""Hydra's and OmegaConf's errors in annfactory's words (:func:`rerender`): the key,
what is wrong and the fix, without Hydra's or OmegaConf's framing."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from annfactory.errors import (
    ConfigError,
)
from annfactory.fixes import shell_word as _shell

if TYPE_CHECKING:
    pass


def has_key(node: Any, key: str) -> bool:
    """``key`` is in the mapping ``node``, a ``???`` value included (which is not
    "in" its node for OmegaConf, yet there to be set)."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(node, DictConfig):
        return False
    return key in node or OmegaConf.is_missing(node, key)


def is_mapping(node: Any) -> bool:
    from omegaconf import DictConfig

    return isinstance(node, DictConfig)


def _quoted(match: re.Match[str]) -> str:
    return _shell(match.group(1))


def rerender(error: Exception, cfg: Any = None) -> ConfigError:
    """An annfactory error with the essence of a Hydra or OmegaConf error.

    Args:
        error: The Hydra or OmegaConf error.
        cfg: The config being resolved, if any: an interpolation error then quotes
            the interpolation as written.
    """
    from omegaconf.errors import (
        GrammarParseError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
        MissingMandatoryValue,
    )

    key = str(getattr(error, "full_key", "") or "")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [
        line for line in lines if not line.startswith(("full_key:", "object_type="))
    ]
    message = lines[0] if lines else type(error).__name__
    if key and isinstance(error, MissingMandatoryValue):
        return ConfigError(
            key, "has no value (???): it must be given.", f"Set {key}=<value>."
        )
    if key and isinstance(error, InterpolationResolutionError | GrammarParseError):
        written = _raw_value(cfg, key)
        what = f"{written!r}" if isinstance(written, str) else "the interpolation"
        if isinstance(error, InterpolationToMissingValueError):
            message = "it refers to a value that is missing (???)"
        return ConfigError(
            key,
            f"{what} cannot be resolved: {message.rstrip('.')}.",
            "Interpolate an existing config path, e.g. ${model.in_features}, "
            "or give a plain value.",
        )
    # Hydra's hints give overrides as Hydra reads them; a shell needs some quoted.
    hints = [re.sub(r"(?<= use )([+~]\S.*)$", _quoted, line) for line in lines[1:3]]
    hint = " ".join(hints) if hints else None
    if hint and len(hint) > 300:
        hint = hint[:297] + "..."
    return ConfigError(key, message, hint)


_NOT_VALID = re.compile(r"is not a valid (?P<type>\w+)")


def invalid_value(cause: Exception) -> ConfigError:
    """A value that a typed node (Hydra's own config, a plugin's schema) refuses."""
    key = str(getattr(cause, "full_key", ""))
    first = str(cause).strip().splitlines()[0].rstrip(".")
    expected = _NOT_VALID.search(first)
    root = "hydra" if key.startswith("hydra") else "job"
    if expected:
        shown = f"--cfg {root} --package {key.rpartition('.')[0] or key}"
        hint = f"Give a {expected['type']}; {shown} shows the values there."
    else:  # a mapping of settings given one value
        shown = f"--cfg {root} --package {key}"
        hint = f"Set one of its keys, e.g. {key}.<key>=<value>; {shown} lists them."
    return ConfigError(key, f"{first}.", hint)


def _raw_value(cfg: Any, key: str) -> Any:
    """The value at ``key`` as written (interpolations unresolved), or None."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return None
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
