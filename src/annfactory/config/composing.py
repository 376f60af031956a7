"""The compose facade (:func:`compose`) and the one place that turns a composed
``DictConfig`` into a validated :class:`~annfactory.spec.RunSpec` (:func:`to_spec`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from annfactory.config.diagnosis import rerender_composition
from annfactory.config.precheck import check_overrides
from annfactory.config.rendering import rerender
from annfactory.config.sources import CONFIG_NAME, bundled_hydra
from annfactory.errors import (
    ConfigError,
)
from annfactory.spec import (
    RunSpec,
    parse_run,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig


def compose(overrides: Sequence[str] | str = ()) -> DictConfig:
    """Compose the bundled config with Hydra overrides, from any working directory.

    Works inside a running Hydra application or notebook too: Hydra's global state is
    saved and restored around the call.

    Args:
        overrides: Command-line style overrides, e.g. ``["model=mlp", "init=normal"]``;
            a single string is one override (``"model=mlp"``).

    Returns:
        The composed config, as ``scripts/run.py`` would see it.

    Raises:
        ConfigError: An override names an unknown option or parameter, or does not
            parse; the message names the closest valid name.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for_hydra = check_overrides(overrides)

    def compose_with(given: list[str], hydra_node: bool = False) -> DictConfig:
        with bundled_hydra():
            cfg: DictConfig = hydra_compose(
                config_name=CONFIG_NAME,
                overrides=given,
                return_hydra_config=hydra_node,
            )
        return cfg

    try:
        return compose_with(for_hydra)
    except (HydraException, OmegaConfBaseException) as error:
        # Not "from error": Hydra prints an OmegaConf cause after our message. The
        # original stays the context, which a full traceback shows.
        raise rerender_composition(  # noqa: B904
            error, for_hydra, lambda given: compose_with(given, hydra_node=True)
        )


def to_spec(cfg: DictConfig | Mapping[str, Any], strict: bool = True) -> RunSpec:
    """Validate a composed config and resolve it into a :class:`RunSpec`.

    Interpolations are resolved and ``???`` values reported with their path. A
    ``hydra`` node, if present, is ignored. ``strict=False`` ignores top-level keys
    that are not annfactory's (see :func:`~annfactory.spec.parse_run`).
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as error:
            # Not "from error": Hydra would print the OmegaConf error after ours.
            raise rerender(error, cfg)  # noqa: B904
    else:
        data = dict(cfg)
    if not isinstance(data, dict):
        raise ConfigError("<root>", "the config is not a mapping.", "Give a mapping.")
    data.pop("hydra", None)
    config = {str(key): value for key, value in data.items()}
    file_task = _file_task(config)
    if file_task is None:
        return parse_run(config, strict=strict)
    return _with_table_file(config, file_task, strict)


def _file_task(config: Mapping[str, Any]) -> str | None:
    """The task the config names, if it reads a file with a saved run
    (``task=predict``, ``task=evaluate``): its ``data`` node is that file, not a
    data set."""
    from annfactory.tasks.predict import FILE_TASKS

    node = config.get("task")
    name = node.get("name") if isinstance(node, Mapping) else node
    return str(name) if name in FILE_TASKS else None


def _with_table_file(config: dict[str, Any], task: str, strict: bool) -> RunSpec:
    """The spec of a task that reads a file with a saved run: its ``data`` node,
    checked, is ``extras["data"]``, a :class:`~annfactory.tasks.predict.TableFile`;
    the rest parses as any run's."""
    from dataclasses import replace

    from annfactory.tasks.predict import parse_table_file

    file = parse_table_file(config.pop("data", None), task)
    spec = parse_run(config, strict=strict)
    return replace(spec, extras={**spec.extras, "data": file})
