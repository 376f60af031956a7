"""The pre-check of keys: overrides of keys and group slots that do not exist, ``+``
on keys that do, and per-layer settings that a top-level group replaces.

These compose the config (0.1 s or more), and only when a command line sets a key
that the primary config may lack."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.config.diagnosis import generated_layer_names, unknown_key
from annfactory.config.rendering import has_key, is_mapping
from annfactory.config.rewriting import override_key, replaces_slot, rewritten_for_hydra
from annfactory.config.sources import (
    CONFIG_NAME,
    bundled_hydra,
    bundled_yaml,
    compose_bundled,
    conf_dir,
    load_yaml,
    primary_default,
    primary_keys,
    user_option_file,
)
from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    UnknownNameError,
)
from annfactory.fixes import shell_word as _shell
from annfactory.groups import (
    choice_group,
    groups,
)
from annfactory.models import model_types
from annfactory.spec import (
    layers_set_by_groups,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig


def check_unknown_keys(
    parsed: list[Any], overrides: list[str], config_dirs: list[Path]
) -> DictConfig | None:
    """Overrides of keys and group slots that do not exist, and ``+`` on keys that do.

    A value override (``model.depht=3``) or a deletion (``~model.nope``) of a key that
    the config lacks names the closest existing key (a missing layer: the layers and
    how ``+`` adds one); Hydra would say only that the key "is not in struct" or "does
    not exist". A mapping set with ``=`` may only hold existing keys. An addition
    (``+model.in_features=4``) of a key that has a value says to drop the ``+``. A
    group slot (``init@model.layers.linear9.weight_init``) that no defaults entry
    fills names the closest one, or says that ``+`` adds it to an existing layer.

    Composing costs about 0.1 s, so it happens only when a command line sets, deletes
    or adds a nested key, fills a group slot, or sets a top-level key that the primary
    config lacks (``sede=1``; not a config group of Hydra's or of a ``--config-dir``).

    Returns:
        The config composed without the checked keys, or None if none was composed.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    searchpath_changed = any(o.key_or_group == "hydra.searchpath" for o in parsed)
    suspects, additions = _suspects(parsed, config_dirs, searchpath_changed)
    listed = _listed_slots(parsed, config_dirs)
    slots = [
        o
        for o in parsed
        if o.package
        and o.key_or_group in groups
        and not (o.is_add() or o.is_delete() or o.is_sweep_override())
        and override_key(o) not in listed
    ]
    if not (suspects or additions or slots) or searchpath_changed:
        return None
    lines = dict(zip(map(id, parsed), overrides, strict=True))
    checked = {id(o) for o in [*suspects, *additions]}
    rest = [(o, line) for o, line in zip(parsed, overrides, strict=True)]
    rest = [(o, line) for o, line in rest if id(o) not in checked]
    try:
        cfg = compose_bundled(
            rewritten_for_hydra([o for o, _ in rest], [x for _, x in rest])
        )
    except (HydraException, OmegaConfBaseException) as error:
        _check_slot_failure(error, slots, rest, lines)
        return None  # another override is wrong; Hydra or our checks report it
    added = [o.key_or_group for o in additions]
    for override in suspects:
        key = override.key_or_group
        if any(key.startswith(f"{prefix}.") for prefix in added):
            continue  # under a key that a + adds
        _check_key_path(cfg, override, lines[id(override)])
    for override in additions:
        _check_addition(cfg, override)
    return cfg


def _check_addition(cfg: DictConfig, override: Any) -> None:
    """``+key=value`` adds a key that the config lacks (or holds as ``???``)."""
    from omegaconf import OmegaConf

    if replaces_slot(override):
        return  # replaces whatever the slot holds
    key = override.key_or_group
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    # A ??? value counts as absent, as Hydra counts it.
    if not has_key(node, last) or OmegaConf.is_missing(node, last):
        return
    if isinstance(override.value(), dict) and is_mapping(node[last]):
        return  # Hydra merges a mapping into a mapping under +
    value = override.get_value_element_as_str()
    raise ConfigError(
        key,
        "already has a value; + adds a key that is not there.",
        f"Write {_shell(f'{key}={value}')} to change it.",
    )


def _suspects(
    parsed: list[Any], config_dirs: list[Path], searchpath_changed: bool
) -> tuple[list[Any], list[Any]]:
    """The value overrides and deletions of keys that may not exist (a nested key, or
    a top-level key that the primary config lacks), and the additions (``+``)."""

    def unknown_top_level(key: str) -> bool:
        return not (
            "/" in key  # a group path such as hydra/launcher
            or key in primary_keys()
            or key in groups
            or searchpath_changed
            or any((Path(root) / key).is_dir() for root in config_dirs)
        )

    def plain_key(override: Any) -> bool:
        return not (
            override.package is not None
            or override.is_sweep_override()
            or override.key_or_group.startswith("hydra.")
            or override.is_force_add()
        )

    suspects = [
        override
        for override in parsed
        if plain_key(override)
        and not override.is_add()
        and (
            "." in override.key_or_group
            or (not override.is_delete() and unknown_top_level(override.key_or_group))
        )
    ]
    return suspects, [o for o in parsed if plain_key(o) and o.is_add()]


#: What each top-level group replaces: the field of every layer it sets, and those
#: layers, in words. The model's own key that it replaces (an mlp's
#: ``hidden_activation``) is its model type's (``ModelType.group_keys``).
_GROUP_FIELDS = {
    "init": ("weight_init", "weight init of every dense layer"),
    "activation": ("activation", "activation of every dense layer but the last"),
}


def overridden_settings(
    parsed: list[Any], overrides: list[str], cfg: DictConfig | None
) -> list[str]:
    """A note for each top-level group (``init=zeros``) that replaces a per-layer
    setting given on the same command line
    (``model.layers.linear1.weight_init=orthogonal``), which would otherwise be
    dropped in silence."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    groups = {
        str(o.key_or_group): line
        for o, line in zip(parsed, overrides, strict=True)
        if o.key_or_group in _GROUP_FIELDS
        and o.package is None
        and not (o.is_delete() or o.is_sweep_override())
    }
    if not groups:
        return []
    # Per-layer settings as (group, layer, line), and the model's own keys for all
    # its layers as (group, None, line) with the key.
    settings: list[tuple[str, str | None, str]] = []
    model_keys: dict[int, str] = {}
    for override, line in zip(parsed, overrides, strict=True):
        if override.is_delete() or override.is_sweep_override():
            continue
        path = str(override.package or override.key_or_group)
        for group in groups:
            field, _ = _GROUP_FIELDS[group]
            layer = re.fullmatch(rf"model\.layers\.(\w+)\.{field}(\..+)?", path)
            if layer:
                settings.append((group, layer.group(1), line))
            for model_key in _model_keys_of(group):
                if re.fullmatch(rf"model\.{model_key}(\..+)?", path):
                    model_keys[len(settings)] = model_key
                    settings.append((group, None, line))
    if not settings:
        return []
    try:
        if cfg is None:
            cfg = compose_bundled(rewritten_for_hydra(parsed, overrides))
        container = OmegaConf.to_container(cfg.model, resolve=True)
        assert isinstance(container, dict)
        model = {str(key): value for key, value in container.items()}
        set_by_init, set_by_activation = layers_set_by_groups(model)
    except (HydraException, OmegaConfBaseException, AnnFactoryError):
        return []  # the overrides are wrong; their error says so
    replaced = {"init": set_by_init, "activation": set_by_activation}
    own_keys = _own_group_keys(model)
    notes = []
    for group, line in groups.items():
        dropped = [
            setting
            for index, (chosen, layer, setting) in enumerate(settings)
            if chosen == group
            and (
                layer in replaced[group]
                if layer is not None
                else own_keys.get(group) == model_keys[index]
            )
        ]
        if dropped:
            verb = "has" if len(dropped) == 1 else "have"
            notes.append(
                f"{line} sets the {_GROUP_FIELDS[group][1]}, so "
                f"{', '.join(dropped)} {verb} no effect."
            )
    return notes


def _model_keys_of(group: str) -> set[str]:
    """The model keys that ``group`` replaces, in any registered model type."""
    return {
        entry.group_keys[group]
        for _, entry in model_types.items()
        if group in entry.group_keys
    }


def _own_group_keys(model: Mapping[str, Any]) -> Mapping[str, str]:
    """The group keys of a composed model's type (none for an unknown type)."""
    name = model.get("type")
    if isinstance(name, str) and name in model_types:
        return model_types.get(name).group_keys
    return {}


def _listed_slots(parsed: list[Any], config_dirs: list[Path]) -> set[str]:
    """Group slots that the defaults list of the chosen model or task surely has
    (``init@model.layers.linear1.weight_init``), read from its file, so that the
    usual ``group@slot=option`` needs no composition to be checked (0.1 s or more).
    Slots that come from elsewhere are checked by composing."""
    chosen = {group: primary_default(group) for group in ("model", "task")}
    for override in parsed:
        group = override.key_or_group
        value = override.value() if not override.is_sweep_override() else None
        if group in chosen and override.package is None and not override.is_delete():
            chosen[group] = value if isinstance(value, str) else None
    listed: set[str] = set()
    for group, option in chosen.items():
        if option is None:
            continue
        path = user_option_file(group, option, config_dirs)
        if path is not None:
            listed.update(_slots_in(group, load_yaml(path, group).get("defaults")))
        else:
            listed.update(_bundled_slots(group, option))
    return listed


@cache
def _bundled_slots(group: str, option: str) -> frozenset[str]:
    path = conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return frozenset()
    data = bundled_yaml(path)
    return frozenset(_slots_in(group, data.get("defaults")))


def _slots_in(group: str, defaults: Any) -> set[str]:
    """The slots (``init@model.layers.linear1.weight_init``) of a defaults list in an
    option file of ``group``: only absolute groups with a plain package, which is
    relative to the file's; Hydra's package keywords (``_global_``, ...) are left to
    Hydra."""
    slots = set()
    for entry in defaults if isinstance(defaults, list) else []:
        if not (isinstance(entry, dict) and len(entry) == 1):
            continue
        target = str(next(iter(entry)))
        if target.startswith("/") and "@" in target:
            slot_group, _, package = target[1:].partition("@")
            if not re.search(r"(^|\.)_\w+_($|\.)", package):
                slots.add(f"{slot_group}@{group}.{package}")
    return slots


def _check_key_path(cfg: DictConfig, override: Any, line: str) -> None:
    """Each part of the override's key exists; so does each key of a mapping it sets
    with ``=``, which Hydra merges into what is there."""
    from omegaconf import OmegaConf

    node: Any = cfg
    path: list[str] = []
    for part in override.key_or_group.split("."):
        if not has_key(node, part):
            raise unknown_key(cfg, node, path, part, override, line)
        node = OmegaConf.select(node, part, throw_on_missing=False)
        path.append(part)
    value = override.value()
    if override.is_delete() or replaces_slot(override):
        return
    if isinstance(value, dict) and is_mapping(node):
        _check_mapping_keys(cfg, node, path, value, override, line)


def _check_mapping_keys(
    cfg: DictConfig,
    node: Any,
    path: list[str],
    value: dict[str, Any],
    override: Any,
    line: str,
) -> None:
    from omegaconf import OmegaConf

    for name, child in value.items():
        name = str(name)
        if not has_key(node, name):
            group = choice_group(path[-1]) if path else None
            option = node.get("name") if "name" in node else None
            if group is not None and isinstance(option, str):
                group.check_option_keys(option, [name], ".".join(path))
            raise unknown_key(cfg, node, path, name, override, line)
        inner = OmegaConf.select(node, name, throw_on_missing=False)
        if isinstance(child, dict) and is_mapping(inner):
            _check_mapping_keys(cfg, inner, [*path, name], child, override, line)


def _check_slot_failure(
    error: Exception,
    slots: list[Any],
    rest: list[tuple[Any, str]],
    lines: dict[int, str],
) -> None:
    """If Hydra failed on a group slot that no defaults entry fills
    (``init@model.layers.linear9.weight_init=orthogonal``), raise our error: ``+``
    adds the choice to an existing layer; otherwise the closest slot there is."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = re.match(r"Could not override '([^']+)'", str(error))
    override = next(
        (o for o in slots if found and o.get_key_element() == found.group(1)), None
    )
    if override is None:
        return
    slot_ids = {id(o) for o in slots}
    base = [line for o, line in rest if id(o) not in slot_ids]
    base_parsed = [o for o, _ in rest if id(o) not in slot_ids]
    base = rewritten_for_hydra(base_parsed, base)
    try:
        cfg = compose_bundled(base)
        with bundled_hydra():
            loader = GlobalHydra.instance().config_loader()
            defaults = loader.compute_defaults_list(CONFIG_NAME, base, RunMode.RUN)
    except (HydraException, OmegaConfBaseException):
        return
    group = str(override.key_or_group)
    key = override_key(override)
    line = lines[id(override)]
    layer, _, _ = str(override.package).rpartition(".")
    name = layer.removeprefix("model.layers.")
    layers_node = OmegaConf.select(cfg, "model.layers", default=None)
    existing = list(layers_node) if isinstance(layers_node, DictConfig) else []
    if layer.startswith("model.layers.") and name in [
        *existing,
        *generated_layer_names(cfg),
    ]:
        raise ConfigError(
            key,
            f"no defaults entry chooses the {group} of layer {name!r}, so there is "
            "nothing to override.",
            f"+ adds the choice: {_shell('+' + line)}",
        )
    known = defaults.overrides.known_choices_per_group.get(group, set())
    raise UnknownNameError(key, f"{group} slot", key, sorted(known))
