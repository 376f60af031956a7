"""Saved runs: saving a model with its spec into a directory, and rebuilding it.

A run directory holds ``spec.yaml`` (the resolved spec, plain data),
``weights.safetensors`` (every tensor of the state dict) and ``metrics.json``.
:func:`save_run` writes them into any directory (a task's run, a training checkpoint,
an export); it knows nothing of tasks. :func:`load_run` validates the spec exactly
like a fresh config (only registered names are built) and reads the weights with
safetensors, which never unpickles.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory._version import __version__
from annfactory.errors import ConfigError
from annfactory.files import to_yaml, write_atomic
from annfactory.spec import FORMAT_KEY, RunSpec, parse_run

if TYPE_CHECKING:
    import torch

    from annfactory.network import Network

__all__ = [
    "FORMAT_VERSION",
    "METRICS_FILE",
    "SPEC_FILE",
    "WEIGHTS_FILE",
    "closest_run",
    "load_run",
    "load_spec",
    "metrics_json",
    "run_load_error",
    "save_run",
    "saved_task",
]

SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.json"

#: The format of the run files this annfactory writes and reads, recorded in
#: ``spec.yaml`` as ``format_version`` (:data:`annfactory.spec.FORMAT_KEY`). A run
#: without one was saved before formats were versioned; it is format 1. A change to
#: what a saved run means (a key renamed, a default changed) bumps it, and
#: :func:`load_spec` then reads every older format as it was written.
FORMAT_VERSION: Final = 1


def save_run(
    directory: str | Path,
    spec: RunSpec,
    model: torch.nn.Module,
    metrics: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Save a run into ``directory``: what :func:`load_run` reads back.

    Writes ``spec.yaml`` (the resolved spec), ``weights.safetensors`` (the whole
    state dict, buffers included; none for a spec on ``device=meta``) and, given
    ``metrics``, ``metrics.json``. Each file is written beside its final name and
    renamed into place, so a reader sees the old file or the new one, never a
    half-written one. The same spec and weights give the same bytes in every process.
    Tasks save through :func:`annfactory.tasks.save_model`, training checkpoints and
    export call this directly.

    Args:
        directory: The run directory (created if missing).
        spec: The run's spec.
        model: The network built from ``spec`` (its state dict is saved).
        metrics: Saved as ``metrics.json`` (non-finite numbers as null) if given.

    Returns:
        The paths written.
    """

    folder = Path(directory)
    spec_path = folder / SPEC_FILE
    data = {FORMAT_KEY: FORMAT_VERSION, **spec.to_dict()}
    write_atomic(spec_path, to_yaml(data))
    written = [spec_path]
    if spec.device != "meta":
        written.append(_save_weights(folder / WEIGHTS_FILE, model))
    if metrics is not None:
        write_atomic(folder / METRICS_FILE, metrics_json(metrics))
        written.append(folder / METRICS_FILE)
    return written


def metrics_json(metrics: Mapping[str, Any]) -> str:
    """The text of ``metrics.json``: indented JSON, non-finite numbers as null."""
    return json.dumps(_finite(metrics), indent=2) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _save_weights(path: Path, model: torch.nn.Module) -> Path:
    """Write the state dict to ``path`` with safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {
        name: tensor.detach().contiguous().cpu()
        for name, tensor in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    try:
        # One metadata key only: safetensors writes the metadata in hash-map order,
        # which differs between processes, and the same run must give the same bytes.
        save_file(tensors, str(partial), metadata={"format": "pt"})
        # safetensors creates the file readable by its owner only; give it the mode
        # of the run's other files (what the umask allows).
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o666 & ~umask)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


#: What load_run and load_spec accept besides a run directory: its spec file (any
#: name with these suffixes) or its weights file.
_SPEC_SUFFIXES = (".yaml", ".yml")
_WEIGHTS_SUFFIX = ".safetensors"


def _run_files(path: str | Path) -> tuple[Path, Path]:
    """The spec file and the weights file that ``path`` points to: a run directory,
    its ``spec.yaml`` (or another ``.yaml`` spec) or its ``weights.safetensors``."""
    given = Path(path)
    if given.is_dir():
        return given / SPEC_FILE, given / WEIGHTS_FILE
    if given.suffix == _WEIGHTS_SUFFIX:
        return given.parent / SPEC_FILE, given
    if given.suffix in _SPEC_SUFFIXES or not given.exists():
        return given, given.parent / WEIGHTS_FILE
    raise ConfigError(
        str(given),
        f"is not a run directory, nor its {SPEC_FILE} or {WEIGHTS_FILE}.",
        f"Pass the run directory: load_run({str(given.parent)!r}).",
    )


def load_spec(path: str | Path) -> RunSpec:
    """The validated spec of a run directory (or of its ``spec.yaml`` or
    ``weights.safetensors`` file).

    Runs of every format up to :data:`FORMAT_VERSION` load, those saved before
    formats were versioned included.

    Raises:
        ConfigError: No spec file, not YAML, a newer format than this annfactory
            reads, or an invalid spec (the message names the config path).
    """
    import yaml

    file, _ = _run_files(path)
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
    except UnicodeDecodeError:
        raise ConfigError(
            str(file), "is not a spec: it is not UTF-8 text.", "Restore the file."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(file), "does not hold a spec mapping.", "Restore the file."
        )
    _check_format(file, data.pop(FORMAT_KEY, 1))
    return parse_run(data)


def _check_format(file: Path, version: Any) -> None:
    """Refuse a spec.yaml of a format this annfactory does not read: a newer one,
    or a ``format_version`` that is no version at all."""
    reads = f"annfactory {__version__} reads {FORMAT_KEY} {FORMAT_VERSION}"
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(
            str(file),
            f"{FORMAT_KEY} {version!r} is not a format version ({reads}).",
            "Restore the file.",
        )
    if version > FORMAT_VERSION:
        raise ConfigError(
            str(file),
            f"{FORMAT_KEY} {version} is newer than {reads}.",
            "Load the run with the newer annfactory that saved it.",
        )


def closest_run(path: Path, shown: str, marker: str = SPEC_FILE) -> str:
    """`` Did you mean '<dir>'?``: the directory beside ``path`` that holds
    ``marker`` (a saved run's spec, a stopped run's checkpoint) and whose name is
    closest to ``path``'s (a run directory's name mistyped), or nothing.
    ``shown``: ``path`` as the user typed it."""
    from annfactory.errors import closest_name

    try:
        runs = [e.name for e in path.parent.iterdir() if (e / marker).is_file()]
    except OSError:
        return ""
    found = closest_name(path.name, runs)
    if found is None:
        return ""
    return f" Did you mean {str(Path(shown).parent / found)!r}?"


def saved_task(path: Path) -> str | None:
    """The task that ran in the run directory ``path``, from its ``metrics.json``
    (None where there is none, or it does not say)."""
    import json

    try:
        name = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def run_load_error(
    error: ConfigError, shown: str, hint: str, key: str = "task.run"
) -> ConfigError:
    """``error`` from loading a run, named as the option that gave it (``task.run``,
    ``task.init_from``): a task that reads a saved run reports its file's problem
    under the option the user set."""
    where = f"{error.key}: " if error.key else ""
    return ConfigError(
        key,
        f"the run {shown} does not load: {where}{error.problem}",
        error.hint or hint,
    )


def load_run(path: str | Path, device: str | None = None) -> Network:
    """Rebuild the model a run saved, in eval mode: identical state dict, identical
    outputs.

    A loaded run is for inference, so it comes in eval mode: batch norms use their
    saved running statistics and dropout is off, and a forward pass changes nothing
    in the model. Call ``.train()`` on it to fine-tune.

    The spec is validated exactly like a fresh config, so a spec naming anything
    unregistered (or a ``_target_``) is refused before anything is built. The weights
    file is read with safetensors, which never unpickles: its header (names, shapes,
    dtypes) is checked against the spec first, then the tensors are read one at a
    time. No tensor is read for ``device="meta"``, and a run without weights (one
    made on ``device=meta``) loads onto ``meta``.

    Args:
        path: The run directory (holding ``spec.yaml`` and ``weights.safetensors``),
            or its ``spec.yaml`` or ``weights.safetensors``.
        device: Where to put the model (default: the device the run used).

    Raises:
        ConfigError: The spec is invalid, or the weights are missing, are not a
            safetensors file, or do not match the spec (names, shapes, dtypes).
        DeviceError: The device is not on this machine (names ``device="cpu"``).
        MemoryLimitError: The model would not fit in the device's memory.
    """
    model = _load_run(path, device)
    model.eval()
    return model


def _load_run(path: str | Path, device: str | None) -> Network:
    """:func:`load_run` without the switch to eval mode."""
    from dataclasses import replace

    from safetensors import SafetensorError, safe_open

    from annfactory.factory import build_network, state_layout
    from annfactory.spec import validate_device

    spec = load_spec(path)
    if device is not None:
        spec = replace(spec, device=validate_device(device))
    _check_device(path, spec.device, device is None)
    _, weights_file = _run_files(path)
    if not weights_file.exists() and spec.device == "meta":
        # Shapes only: the spec is all a meta model needs.
        return build_network(spec)
    if not weights_file.is_file():
        raise ConfigError(
            str(weights_file),
            "no saved weights here.",
            "Runs on device=meta save none; load_run(path, device='meta') gives "
            "the shapes.",
        )
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            saved = {
                name: (
                    tuple(handle.get_slice(name).get_shape()),
                    str(handle.get_slice(name).get_dtype()),
                )
                for name in handle.keys()  # noqa: SIM118 (safe_open is not a dict)
            }
            layout = state_layout(spec)
            _check_header(weights_file, saved, layout)
            if spec.device == "meta":
                return build_network(spec, weights=_MetaWeights(layout))
            return build_network(spec, weights=_LazyWeights(handle))
    except (SafetensorError, OSError) as error:
        _refuse_pickle(weights_file)
        raise ConfigError(
            str(weights_file), f"cannot be read: {error}", "Restore the file."
        ) from None


def _check_device(path: str | Path, device: str, saved: bool) -> None:
    """Refuse a device this machine lacks, in Python's words: the fix is the
    ``device`` argument of :func:`load_run`, not a command-line override."""
    import torch

    from annfactory.errors import DeviceError
    from annfactory.factory import resolve_device

    try:
        resolve_device(device)
    except DeviceError as error:
        where = " (the device the run used)" if saved else ""
        usable = "cuda:0" if torch.cuda.is_available() else "cpu"
        raise DeviceError(
            "device",
            f"{error.problem.removesuffix('.')}{where}.",
            f'Pass device="{usable}": '
            f'load_run({json.dumps(str(path))}, device="{usable}").',
        ) from None


#: safetensors' names of the dtypes a state dict holds.
_SAFETENSORS_DTYPES: Final = {
    "float32": "F32",
    "float64": "F64",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "bool": "BOOL",
}


def _check_header(
    file: Path,
    saved: Mapping[str, tuple[tuple[int, ...], str]],
    expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
) -> None:
    """The saved tensors are the state dict the spec gives: names, shapes, dtypes."""
    hint = "The weights belong to another spec; restore the run's own files."
    extra = sorted(set(saved) - set(expected))
    if extra:
        raise ConfigError(
            str(file), f"holds tensors the spec's network lacks: {extra[:3]}.", hint
        )
    for name, (shape, dtype) in expected.items():
        if name not in saved:
            raise ConfigError(str(file), f"has no tensor {name!r}.", hint)
        saved_shape, saved_dtype = saved[name]
        dtype_name = str(dtype).removeprefix("torch.")
        wanted = _SAFETENSORS_DTYPES.get(dtype_name, dtype_name)
        if saved_shape != shape or saved_dtype != wanted:
            raise ConfigError(
                str(file),
                f"{name} is {saved_dtype} {list(saved_shape)}; the spec says "
                f"{wanted} {list(shape)}.",
                hint,
            )


def _refuse_pickle(file: Path) -> None:
    """Name a ``torch.save`` file (a zip archive or a pickle) as such; it is never
    unpickled. Called only for a file that safetensors could not read."""
    with file.open("rb") as stream:
        start = stream.read(2)
    pickle = len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5
    if start == b"PK" or pickle:
        raise ConfigError(
            str(file),
            "is a pickle (what torch.save writes), not safetensors; annfactory "
            "never unpickles.",
            "Restore the file the run saved, or save weights with "
            "safetensors.torch.save_file.",
        )


class _LazyWeights(Mapping[str, "torch.Tensor"]):
    """The tensors of an open safetensors file, each read when it is looked up."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._names = list(handle.keys())

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._names:
            raise KeyError(name)
        tensor: torch.Tensor = self._handle.get_tensor(name)
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _MetaWeights(Mapping[str, "torch.Tensor"]):
    """Shapes and dtypes only, on the meta device (a model loaded onto ``meta``)."""

    def __init__(
        self, layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]]
    ) -> None:
        self._layout = layout

    def __getitem__(self, name: str) -> torch.Tensor:
        import torch

        shape, dtype = self._layout[name]
        return torch.empty(shape, dtype=dtype, device="meta")

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout)

    def __len__(self) -> int:
        return len(self._layout)
