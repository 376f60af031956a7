"""The network spec: typed, validated, resolved, and free of torch.

:func:`parse_run` turns plain data (a composed config as a container, or a saved
``spec.yaml``) into a :class:`RunSpec`. Every check that can be made before allocation
is made, and every error names its full config path. The factory takes only the spec.

This module holds the run-level checks, on top of the parsers: the spec's types are
:mod:`annfactory.spec_types`', the parsing of the model and its layers is
:mod:`annfactory.layer_spec`'s, the sizes a data set gives a model (the one step that
reads a file) :mod:`annfactory.sizing`'s, and the model types are
:mod:`annfactory.models`'. Their public names stay importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.groups import (
    DEVICES,
    DTYPES,
    KEYS,
    ConfigGroup,
    groups,
    run_keys,
    validate_device,
    validate_key,
)
from annfactory.layer_spec import (
    LAYER_FIELDS,
    layers_set_by_groups,
    parse_network,
    reject_targets,
)
from annfactory.models import mlp_layer_names, model_types
from annfactory.params import require_mapping
from annfactory.sizing import check_data_sizes, data_shape_of, size_by_data
from annfactory.spec_types import (
    FOLD_AT,
    ActivationSpec,
    InitSpec,
    LayerSpec,
    NetworkSpec,
    ParameterSpec,
    RunSpec,
)

__all__ = [
    "DEVICES",
    "DTYPES",
    "FOLD_AT",
    "FORMAT_KEY",
    "LAYER_FIELDS",
    "MODEL_TYPES",
    "ActivationSpec",
    "InitSpec",
    "LayerSpec",
    "NetworkSpec",
    "ParameterSpec",
    "RunSpec",
    "layers_set_by_groups",
    "mlp_layer_names",
    "parse_network",
    "parse_run",
    "reject_targets",
    "validate_device",
]

#: The built-in model types (the registry :data:`annfactory.models.model_types` has
#: every registered one).
MODEL_TYPES: Final = tuple(model_types.names())
#: The key of a saved ``spec.yaml`` that records its file format (``format_version:
#: 1``). No config key: :mod:`annfactory.runs` writes it and checks it on loading;
#: :func:`parse_run` skips it, so a saved spec.yaml's data parses as it is.
FORMAT_KEY: Final = "format_version"

# ------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------


def parse_run(data: Mapping[str, Any], strict: bool = True) -> RunSpec:
    """Validate a whole run config (plain data) and resolve it into a :class:`RunSpec`.

    Args:
        data: The config: ``model`` and optionally the other top-level groups
            (``init``, ``activation``, ``task``, a plugin's) and keys (``seed``,
            ``batch_size``, ``device``, ``dtype``, ``compile``); see
            :mod:`annfactory.groups`.
        strict: Refuse other top-level keys (a typo such as ``sede``). With False they
            are ignored, for configs of applications that hold keys of their own.
            :data:`FORMAT_KEY` (of a saved spec.yaml) is skipped either way; its
            version is checked by :func:`annfactory.load_spec`.

    Raises:
        ConfigError: Anything is wrong; the message names the config path.
    """
    require_mapping(data, "", "the config")
    reject_targets(data, "")
    chosen = _top_level_groups(data, strict)
    if "model" not in data:
        raise ConfigError(
            "model", "no model is chosen.", "Add model=demo or model=mlp."
        )
    values = {
        name: validate_key(name, data.get(name, param.default))
        for name, param in KEYS.items()
    }
    extras = {
        name: group.parse(data[name], name)
        for name, group in chosen.items()
        if group.parse is not None
    }
    model = data["model"]
    data_shape = None
    note = None
    if extras.get("data") is not None:
        data_shape = data_shape_of(extras["data"], values["seed"])
        model, note = size_by_data(
            model, data_shape, data.get("init"), data.get("activation")
        )
    network = parse_network(
        model,
        key="model",
        init=data.get("init"),
        activation=data.get("activation"),
    )
    if data_shape is not None:
        check_data_sizes(network, data_shape, model)
    notes = (note,) if note else ()
    return RunSpec(network=network, **values, extras=extras, notes=notes)


def _top_level_groups(data: Mapping[str, Any], strict: bool) -> dict[str, ConfigGroup]:
    """The top-level groups among the keys of ``data``; with ``strict``, any other
    key that is not one of :data:`~annfactory.groups.KEYS` (or :data:`FORMAT_KEY`)
    is refused."""
    chosen: dict[str, ConfigGroup] = {}
    for name in data:
        if name in KEYS or name == FORMAT_KEY:
            continue
        try:
            group: ConfigGroup | None = groups.get(name)  # a miss loads plugins
        except UnknownNameError:
            group = None
        if group is not None and group.top_level:
            chosen[name] = group
        elif strict:
            raise UnknownNameError(str(name), "top-level key", name, run_keys())
    return chosen
