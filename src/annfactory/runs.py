"""Saved runs: the resolved spec and the weights, and rebuilding a model from them.

A run directory holds ``spec.yaml`` (the resolved spec, plain data) and
``weights.safetensors`` (every tensor of the state dict). :func:`load_run` validates the
spec exactly like a fresh config (only registered names are built) and reads the
weights with safetensors, which never unpickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.errors import ConfigError

if TYPE_CHECKING:
    from annfactory.network import Network
    from annfactory.spec import RunSpec
    from annfactory.tasks import TaskContext

__all__ = ["SPEC_FILE", "WEIGHTS_FILE", "load_run", "load_spec", "save_model"]

SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "weights.safetensors"


def save_model(context: TaskContext, model: Network) -> None:
    """Stage ``spec.yaml`` and (off the meta device) ``weights.safetensors``."""
    from omegaconf import OmegaConf

    context.write_text(
        SPEC_FILE, OmegaConf.to_yaml(OmegaConf.create(context.spec.to_dict()))
    )
    path = context.path(WEIGHTS_FILE)
    if path is None or context.spec.device == "meta":
        return
    from safetensors.torch import save_file

    tensors = {
        name: tensor.detach().contiguous().cpu()
        for name, tensor in model.state_dict().items()
    }
    save_file(tensors, str(path), metadata={"format": "pt", "producer": "annfactory"})


def load_spec(path: str | Path) -> RunSpec:
    """The validated spec of a run directory (or of a ``spec.yaml`` file)."""
    import yaml

    from annfactory.spec import parse_run

    file = Path(path)
    if file.is_dir():
        file = file / SPEC_FILE
    if not file.is_file():
        raise ConfigError(
            str(file), "no saved spec here.", f"A run directory holds {SPEC_FILE}."
        )
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0]
        raise ConfigError(
            str(file), f"is not valid YAML: {first}", "Restore the file."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(file), "does not hold a spec mapping.", "Restore the file."
        )
    return parse_run(data)


def load_run(path: str | Path, device: str | None = None) -> Network:
    """Rebuild the model a run saved: identical state dict, identical outputs.

    Args:
        path: The run directory (holding ``spec.yaml`` and ``weights.safetensors``).
        device: Where to put the model (default: the device the run used).

    Raises:
        ConfigError: The spec is invalid (validated like a fresh config, so a spec
            naming an unregistered entry is refused), or the weights are missing or
            do not match the spec.
    """
    from dataclasses import replace

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from annfactory.factory import build_network

    spec = load_spec(path)
    if device is not None:
        from annfactory.spec import _validate_device

        spec = replace(spec, device=_validate_device(device))
    weights_file = Path(path) / WEIGHTS_FILE
    if not weights_file.is_file():
        raise ConfigError(
            str(weights_file),
            "no saved weights here.",
            "Runs on device=meta save no weights.",
        )
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, OSError) as error:
        raise ConfigError(
            str(weights_file), f"cannot be read: {error}", "Restore the file."
        ) from None
    return build_network(spec, weights=weights)
