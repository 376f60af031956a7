"""Fine-tuning in ``task=train``: the network starts from a saved run's parameters
(``task.init_from=<run dir>``), matched by name, and some layers do not train
(``task.freeze=[...]``).

- A name in both networks with the same shape is loaded; with another shape it is
  refused, naming the parameter and both shapes, unless its layer is in
  ``task.init_skip`` (then the config's init draws it).
- The preprocessing layers (``standardize``, ``destandardize``, ``encode``) come
  from the saved run when the data set is the same, and are fitted afresh when it
  differs; a run trained on another number of features is refused.
- What was loaded, what is new and what went unused are printed and recorded in
  ``metrics.json``.
- A frozen layer's parameters get ``requires_grad=False`` and stay out of the
  optimizer: they end the run bit for bit as they started it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import torch

    from annfactory.network import Network
    from annfactory.spec import RunSpec
    from annfactory.tasks.train_options import TrainOptions

__all__ = ["PREPROCESSING", "describe", "freeze_layers", "init_from_run"]

#: The layers task=train puts around the network (fitted on the data, not trained;
#: an encode layer's embeddings train).
PREPROCESSING: Final = ("standardize", "destandardize", "encode")
#: Split options that change the rows, not the data set.
_SPLIT_OPTIONS: Final = ("val_fraction", "test_fraction")


def init_from_run(
    model: Network, spec: RunSpec, options: TrainOptions
) -> dict[str, Any] | None:
    """Load ``options.init_from``'s parameters into ``model`` by name; return what
    was loaded (None without ``init_from``).

    Args:
        model: The new network, built and with its preprocessing fitted.
        spec: Its saved spec (with the data set's record).
        options: The task's options.

    Raises:
        ConfigError: ``task.init_skip`` without ``task.init_from`` or naming no
            layer; the run cannot be loaded; it was trained on another number of
            features; a parameter has another shape there (names it, both shapes,
            and the ``task.init_skip`` that leaves it out).
    """
    layers = _layer_names(model)
    skip = set(_known(options.init_skip, layers, "task.init_skip"))
    if options.init_from is None:
        if skip:
            raise ConfigError(
                "task.init_skip",
                "leaves layers out of task.init_from, which is not set.",
                "Set task.init_from=<run dir>, or leave task.init_skip out.",
            )
        return None
    if not options.init_from.strip():
        raise ConfigError(
            "task.init_from",
            "is empty.",
            "Give the directory of a saved run, or leave task.init_from out.",
        )
    run_dir = Path(options.init_from)
    saved_spec, saved = _saved_run(run_dir, options.init_from)
    same_data = _data_key(saved_spec) == _data_key(spec)
    _check_features(saved_spec, spec, options.init_from)
    state = model.state_dict()
    loaded: list[str] = []
    new: list[str] = []
    skipped: list[str] = []
    for name, tensor in state.items():
        layer = name.split(".", 1)[0]
        if layer in skip:
            skipped.append(name)
        elif name not in saved or (layer in PREPROCESSING and not same_data):
            new.append(name)
        elif tuple(saved[name].shape) != tuple(tensor.shape):
            raise _shape_error(name, layer, saved[name], tensor, options.init_from)
        else:
            loaded.append(name)
    import torch

    with torch.no_grad():
        for name in loaded:
            state[name].copy_(saved[name])
    unused = sorted(name for name in saved if name not in state)
    report = {
        "run": options.init_from,
        "loaded": loaded,
        "new": new,
        "unused": unused,
        "skipped": skipped,
        "preprocessing": "from the run" if same_data else "fitted on this data",
    }
    return report


def freeze_layers(model: Network, names: Sequence[str]) -> list[str]:
    """Turn off the gradients of the layers ``names``; return their parameters'
    names.

    Raises:
        ConfigError: A name is no layer (the closest is named), a layer has no
            parameters, or every parameter of the network would be frozen.
    """
    frozen: list[str] = []
    for layer in _known(names, _layer_names(model), "task.freeze"):
        parameters = list(model.get_submodule(layer).named_parameters())
        if not parameters:
            raise ConfigError(
                "task.freeze",
                f"layer {layer!r} has no parameters to freeze.",
                "Name layers with weights (see the network's summary).",
            )
        for name, parameter in parameters:
            parameter.requires_grad_(False)
            frozen.append(f"{layer}.{name}")
    if frozen and not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(
            "task.freeze",
            "freezes every parameter of the network: nothing would train.",
            "Leave at least one layer out of task.freeze.",
        )
    return frozen


def _layer_names(model: Network) -> list[str]:
    return [name for name, _ in model.named_children()]


def _known(names: Iterable[str], layers: Sequence[str], key: str) -> list[str]:
    """``names``, each a layer of the network (else the closest is named)."""
    result = []
    for name in names:
        if name not in layers:
            raise UnknownNameError(key, "layer", name, layers)
        if name not in result:
            result.append(name)
    return result


def _saved_run(run_dir: Path, shown: str) -> tuple[RunSpec, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    from annfactory.runs import WEIGHTS_FILE, closest_run, load_spec, run_load_error

    hint = (
        "Give the directory of a saved run (it holds spec.yaml and "
        f"{WEIGHTS_FILE}), e.g. task.init_from=outputs/2026-12-07/10-00-00."
    )
    if not run_dir.is_dir():
        guess = closest_run(run_dir, shown)
        raise ConfigError("task.init_from", f"no run directory {shown!r}.{guess}", hint)
    try:
        spec = load_spec(run_dir)
    except ConfigError as error:
        raise run_load_error(error, repr(shown), hint, "task.init_from") from error
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(
            "task.init_from", f"the run {shown!r} has no {WEIGHTS_FILE}.", hint
        )
    try:
        tensors = load_file(str(weights))
    except Exception as error:  # safetensors' own error types are not public
        raise ConfigError(
            "task.init_from",
            f"{str(weights)!r} cannot be loaded: {str(error).strip()}.",
            hint,
        ) from None
    return spec, tensors


def _data_key(spec: RunSpec) -> Any:
    """What makes two runs' data the same data set: its options (the split's
    fractions aside) and, for a file of yours, its columns' record."""
    data = spec.extras.get("data")
    if data is None:
        return None
    options = {k: v for k, v in data.to_dict().items() if k not in _SPLIT_OPTIONS}
    fitted = options.pop("fitted", None) or {}
    return (options, fitted.get("columns"))


def _features(spec: RunSpec) -> int | None:
    data = spec.extras.get("data")
    fitted = getattr(data, "fitted", None)
    if isinstance(fitted, Mapping):
        features = fitted.get("features")
        return features if isinstance(features, int) else None
    return None


def _check_features(saved: RunSpec, spec: RunSpec, shown: str) -> None:
    before, now = _features(saved), _features(spec)
    if before is not None and now is not None and before != now:
        raise ConfigError(
            "task.init_from",
            f"the run {shown!r} was trained on {before} features, and this data has "
            f"{now}: its preprocessing and first layer do not fit.",
            "Fine-tune on data with the same features, or leave task.init_from out.",
        )


def _shape_error(
    name: str, layer: str, saved: torch.Tensor, new: torch.Tensor, shown: str
) -> ConfigError:
    return ConfigError(
        "task.init_from",
        f"parameter {name!r} is {list(saved.shape)} in {shown!r} and "
        f"{list(new.shape)} in this network.",
        f"Leave its layer to the config's init: task.init_skip=[{layer}].",
    )


def describe(
    report: dict[str, Any] | None, frozen: Sequence[str], model: Network
) -> list[str]:
    """The lines a run prints about ``task.init_from`` and ``task.freeze``."""

    def names(items: Sequence[str]) -> str:
        return ", ".join(items) if items else "none"

    lines = []
    if report is not None:
        lines.append(
            f"init_from {report['run']}: loaded {len(report['loaded'])} tensors "
            f"(preprocessing {report['preprocessing']}); new: {names(report['new'])}; "
            f"unused: {names(report['unused'])}"
            + (f"; skipped: {names(report['skipped'])}" if report["skipped"] else "")
        )
    if frozen:
        count = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        lines.append(f"frozen: {names(frozen)} ({count} parameters)")
    return lines
