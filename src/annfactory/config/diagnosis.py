"""Why a composition failed, for the error Hydra raised about one override
(:func:`override_error`): the key, the value, the closest key there is and the ``+``
form where one adds what the override meant.

Hydra composes first; these run only when it fails (the config is composed again
without the failing override, to list the keys there are)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.config.rendering import has_key, invalid_value, rerender
from annfactory.config.rewriting import parsed_overrides, value_text
from annfactory.config.sources import bundled_hydra
from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    UnknownNameError,
    closest_name,
)
from annfactory.fixes import shell_word as _shell
from annfactory.groups import (
    groups,
    top_level_groups,
)
from annfactory.models import GeneratedLayers, model_types

if TYPE_CHECKING:
    from omegaconf import DictConfig


def unknown_key(
    cfg: DictConfig, node: Any, path: list[str], part: str, override: Any, line: str
) -> ConfigError:
    """The error for a key that the config lacks; for a layer, the layers there are
    and how ``+`` adds one (or, in an mlp, a setting to one)."""
    from omegaconf import DictConfig

    key = ".".join([*path, part])
    where = f" in {'.'.join(path) or 'the config'}"
    if path != ["model", "layers"] or override.is_delete():
        valid = set(node) if isinstance(node, DictConfig) else set()
        if not path:  # the top-level groups are absent while no option is chosen
            valid.update(top_level_groups())
        return UnknownNameError(key, "key", part, valid, where=where)
    made = _generated_layers(cfg)
    if made is not None:
        type_name, generated, names, settings = made
        if part in names:
            return ConfigError(
                key,
                f"{type_name} layer {part!r} has no settings of its own yet (its "
                f"layers are made from {' and '.join(generated.made_from)}).",
                f"+ adds one: {_shell('+' + line)}",
            )
        needed = generated.settings_for(part)
        if needed:
            setting = " ".join(
                f"model.{name}={value}" for name, value in needed.items()
            )
            advice = f"with {part}: {setting} {_shell('+' + line)}"
        else:
            example = closest_name(part, names) or names[0]
            edited = line.replace(f"model.layers.{part}", f"model.layers.{example}", 1)
            advice = f"+ gives one a setting: {_shell('+' + edited.lstrip('+'))}"
        count = generated.count_key
        return UnknownNameError(
            key,
            "layer",
            part,
            names,
            where=f" ({type_name}, {count}={settings[count]})",
            advice=advice,
        )
    layers_node = node if isinstance(node, DictConfig) else {}
    return UnknownNameError(
        key,
        "layer",
        part,
        list(layers_node),
        advice=f"+ adds one: {_command_adding_layer(cfg, part, override, line)}",
    )


def _generated_layers(
    cfg: DictConfig,
) -> tuple[str, GeneratedLayers, list[str], dict[str, Any]] | None:
    """The composed model's type, how that type makes its layers, their names and
    the settings they are made from; None for a type that lists its layers (or is
    not registered) and for settings not valid yet."""
    from omegaconf import OmegaConf

    name = OmegaConf.select(cfg, "model.type", throw_on_missing=False)
    if not isinstance(name, str) or name not in model_types:
        return None
    generated = model_types.get(name).generated
    if generated is None:
        return None
    settings = {
        key: OmegaConf.select(cfg, f"model.{key}", throw_on_missing=False)
        for key in generated.made_from
    }
    names = generated.names(settings)
    return None if names is None else (name, generated, names, settings)


def generated_layer_names(cfg: DictConfig) -> list[str]:
    """The layers the composed model makes from its settings (none if it lists them)."""
    made = _generated_layers(cfg)
    return [] if made is None else made[2]


def _command_adding_layer(cfg: DictConfig, name: str, override: Any, line: str) -> str:
    """A command line that adds the layer ``name`` with what ``line`` sets."""
    from omegaconf import OmegaConf

    key = override.key_or_group
    if key in ("model.layers", f"model.layers.{name}"):
        return _shell("+" + line.lstrip("+"))  # a whole layer: + merges it in
    parts = [f"+layer@model.layers.{name}=linear"]
    if key != f"model.layers.{name}.out_features":
        # A linear layer's out_features has no default (???).
        sizes = [
            OmegaConf.select(cfg, f"model.layers.{layer}.out_features", default=None)
            for layer in OmegaConf.select(cfg, "model.layers", default={}) or {}
        ]
        size = next((s for s in reversed(sizes) if isinstance(s, int)), 1)
        parts.append(f"model.layers.{name}.out_features={size}")
    parts.append(_shell(line))
    return " ".join(parts)


#: Hydra's messages about one override that it could not apply to the config.
_COULD_NOT_OVERRIDE = re.compile(r"^Could not override '(?P<key>[^']+)'")


_NOTHING_TO_DELETE = re.compile(
    r"^Could not delete from config\. '(?P<key>[^']+)' does"
)


_OTHER_VALUE = re.compile(
    r"^Could not delete from config\. The value of '(?P<key>[^']+)' is "
    r"(?P<actual>.*) and not (?P<given>.*)\.$",
    re.S,
)


_ALREADY_THERE = re.compile(
    r"^Could not append to config\. An item is already at "
    r"'(?P<key>[^']+)'"
)


def rerender_composition(
    error: Exception,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None = None,
) -> ConfigError:
    """Our message for an error Hydra raised composing ``overrides``: that of
    :func:`override_error`, else :func:`rerender`'s."""
    translated = override_error(error, overrides, compose_with)
    return rerender(error) if translated is None else translated


def override_error(
    error: Exception,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None = None,
) -> ConfigError | None:
    """Our message for an error Hydra raised composing ``overrides`` about one of
    them; None for any other error.

    Hydra's own about one override (a key that does not exist, set without ``+``: "Key
    'fc1' is not in struct"; ``~`` of a missing key; ``+`` of a key that has a value;
    a value of the wrong type) name the key, the value, the closest valid key and, where
    a ``+`` adds what the override meant (an open mapping such as
    ``hydra.job.env_set``, a layer key that the model file leaves out), the ``+``
    form.

    Args:
        error: What Hydra raised.
        overrides: The overrides as Hydra received them.
        compose_with: Composes the same config with other overrides; used to list the
            keys there are (without the failing override). None: no keys listed.
    """
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if not isinstance(error, ConfigCompositionException):
        return None
    message, cause = str(error), error.__cause__
    missing = _COULD_NOT_OVERRIDE.match(message)
    if missing and isinstance(cause, ConfigAttributeError | ConfigKeyError):
        return _missing_key(missing["key"], overrides, compose_with)
    missing = _NOTHING_TO_DELETE.match(message)
    if missing:
        return _missing_key(missing["key"], overrides, compose_with)
    other = _OTHER_VALUE.match(message)
    if other:
        key = other["key"]
        return ConfigError(
            key,
            f"~{key}={other['given']} deletes it only where its value is "
            f"{other['given']}; it is {other['actual']}.",
            f"Write {_shell('~' + key)} to delete it whatever its value.",
        )
    there = _ALREADY_THERE.match(message)
    if there:
        key = there["key"]
        found = _find_override(key, overrides)
        value = value_text(*found) if found else "<value>"
        return ConfigError(
            key,
            "already has a value; + adds a key that is not there.",
            f"Write {_shell(f'{key}={value}')} to change it.",
        )
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        return invalid_value(cause)
    return None


def _find_override(key: str, overrides: Sequence[str]) -> tuple[Any, str] | None:
    """The last override of ``key`` (parsed) and its line, or None."""
    found = None
    for line in overrides:
        try:
            (override,) = parsed_overrides([line])
        except AnnFactoryError:
            continue
        if override.key_or_group == key:
            found = (override, line)
    return found


def _missing_key(
    key: str,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None,
) -> ConfigError | None:
    """The error for an override of a key that the composed config lacks, from the
    config composed without it; None where that cannot be worked out."""
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = _find_override(key, overrides)
    if found is None or compose_with is None:
        return None
    override, line = found
    rest = [other for other in overrides if other != line]
    try:
        cfg = compose_with(rest)
    except (HydraException, OmegaConfBaseException):
        return None  # another override is wrong too: Hydra's message
    node: Any = cfg
    path: list[str] = []
    for part in key.split("."):
        if not has_key(node, part):
            break
        node = OmegaConf.select(node, part, throw_on_missing=False)
        path.append(part)
    else:
        return None
    part = key.split(".")[len(path)]
    adding = None if override.is_delete() else f"+ adds it: {_shell('+' + line)}"
    layer_keys = _layer_keys_of(node) if path[:2] == ["model", "layers"] else []
    if len(path) == 3 and layer_keys:
        if adding and part in layer_keys:
            return ConfigError(
                ".".join([*path, part]),
                f"layer {path[2]!r} has no {part!r} in its config, so {line} has "
                "nothing to set.",
                adding,
            )
        # The keys its type takes, not only those its file happens to set.
        return UnknownNameError(
            ".".join([*path, part]),
            "layer key",
            part,
            layer_keys,
            where=f" for layer type {node.get('type')!r}",
        )
    if path[:1] == ["model"]:
        return unknown_key(cfg, node, path, part, override, line)
    where = f" in {'.'.join(path) or 'the config'}"
    valid = list(node) if isinstance(node, DictConfig) else []
    # An open mapping (hydra.job.env_set, a logging config) takes new keys with +; a
    # schema's node (hydra.job, a launcher's settings) takes only its own.
    open_mapping = isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict
    return UnknownNameError(
        ".".join([*path, part]),
        "key",
        part,
        valid,
        where=where,
        advice=adding if open_mapping and adding else "",
    )


def _layer_keys_of(node: Any) -> list[str]:
    """The keys that a layer node may hold, from its type's schema (none if the type
    is not a registered one)."""
    from annfactory.layers import layers

    type_name = node.get("type") if hasattr(node, "get") else None
    if not isinstance(type_name, str) or type_name not in layers:
        return []
    keys = groups.get("layer").option_keys(layers.get(type_name))
    return list(keys.allowed)


def composer(
    config_name: str, config_dirs: Sequence[Path] = (), multirun: bool = False
) -> Callable[[list[str]], DictConfig]:
    """A function that composes the bundled config (and ``config_dirs``, as
    ``--config-dir`` adds them) with the overrides it is given, as a run
    (``multirun``: as a sweep, its sweep overrides unchecked): what
    :func:`override_error` composes to list the keys there are."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    mode = RunMode.MULTIRUN if multirun else RunMode.RUN
    folders = [f"file://{Path(folder).resolve()}" for folder in config_dirs]

    def compose_with(overrides: list[str]) -> DictConfig:
        searched = any(o.lstrip("+").startswith("hydra.searchpath=") for o in overrides)
        extra = [] if searched or not folders else [_search_path(folders)]
        with bundled_hydra():
            loader = GlobalHydra.instance().config_loader()
            cfg: DictConfig = loader.load_configuration(
                config_name=config_name,
                overrides=[*overrides, *extra],
                run_mode=mode,
                validate_sweep_overrides=False,
            )
        return cfg

    return compose_with


def _search_path(folders: list[str]) -> str:
    return f"hydra.searchpath=[{','.join(folders)}]"
