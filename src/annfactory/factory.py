"""From a spec to an initialized ``nn.Module``: registry look-ups and one pass of init.

Layers are built on the meta device, so PyTorch's default init never runs and the
memory the network needs is known, and checked against what the device has, before
anything is allocated. Each parameter is then allocated once and filled once, on the
CPU, from its own generator seeded from ``(seed, parameter path)``: the same seed gives
bit-identical weights on every device and build path (a meta build materialized with
:func:`materialize` too), and changing one layer leaves every other layer's weights as
they were.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from annfactory.activations import activations
from annfactory.errors import ConfigError, DeviceError, MemoryLimitError
from annfactory.inits import inits
from annfactory.layers import layers
from annfactory.network import Network
from annfactory.seeding import parameter_seed, sampling_dtype, seeded_generator
from annfactory.sequence_layers import attention_values, working_values
from annfactory.spec_types import LayerSpec, ParameterSpec, RunSpec

__all__ = [
    "MEMORY_HEADROOM",
    "available_bytes",
    "batch_bytes",
    "build_network",
    "check_memory",
    "estimate_bytes",
    "materialize",
    "parameter_seed",
    "resolve_device",
    "sampling_dtype",
    "seeded_generator",
    "state_layout",
]


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, after checking it exists on this machine."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "device",
                f"{name!r} is not available on this machine "
                "(torch.cuda.is_available() is False).",
                "Use device=cpu, or device=meta for a dry run without memory.",
            )
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                "device",
                f"{name!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s).",
                "Use device=cuda or device=cuda:0.",
            )
    return device


def build_network(
    spec: RunSpec, weights: Mapping[str, torch.Tensor] | None = None
) -> Network:
    """Build and initialize the network that ``spec`` describes.

    Every layer is first built on the meta device; the memory its parameters and
    buffers need is checked against what the device has (:func:`check_memory`); only
    then is each parameter allocated and filled, once.

    Args:
        spec: A resolved spec (see :func:`annfactory.to_spec`).
        weights: Saved tensors by state_dict key (``linear1.weight``, buffers too):
            used instead of the inits, each checked against the spec's shapes and
            cast to ``spec.dtype``. Read one at a time, so a lazy mapping keeps
            memory low.

    Returns:
        The network on ``spec.device`` in ``spec.dtype``. With ``device="meta"`` its
        parameters have shapes but no memory and no values.

    Raises:
        ConfigError: The weights do not match the spec, or a layer type builds other
            parameters than it declares.
        DeviceError: The device does not exist on this machine.
        MemoryLimitError: The network would not fit in the device's memory.
    """
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    modules = _meta_layers(spec, device, dtype)
    check_memory(spec, modules)
    blocks = [
        (layer.name, module, _activation(layer, device, dtype))
        for layer, module in zip(spec.network.layers, modules, strict=True)
    ]
    try:
        network = Network(spec.network, blocks)
    except KeyError as error:  # a layer name that clashes with a Module attribute
        raise ConfigError(
            "model.layers",
            f"a layer name cannot be used: {error.args[0]}",
            "Rename the layer.",
        ) from None
    if weights is not None:
        _check_weight_keys(weights, network)
    # Only now, with every check passed, do the parameters get memory.
    for layer, (_, module, activation) in zip(spec.network.layers, blocks, strict=True):
        _fill(layer, module, spec.seed, device, dtype, weights)
        if weights is not None and activation is not None:
            _load_activation(activation, f"{layer.name}_act", weights, device)
    return network


def materialize(network: Network, spec: RunSpec) -> Network:
    """Allocate and initialize, in place, a network built on the meta device.

    Each parameter and buffer gets exactly the values :func:`build_network` gives it
    for ``spec`` (same seed: bit-identical), so building on ``meta`` to inspect a
    network and materializing it later equals building it on the device directly.

    Args:
        network: Built by :func:`build_network` with ``device="meta"``.
        spec: The spec it was built from, with the device to materialize on (the
            seed and dtype are used as they are).

    Returns:
        ``network`` itself, on ``spec.device`` in ``spec.dtype``.

    Raises:
        ConfigError: ``spec`` describes another network, its device is ``meta``, or
            the network is not on the meta device.
        DeviceError: The device does not exist on this machine.
        MemoryLimitError: The network would not fit in the device's memory.
    """
    if spec.network != network.spec:
        raise ConfigError(
            "model",
            "the spec describes another network than the one to materialize.",
            "Pass the spec the network was built from, with a real device.",
        )
    if spec.device == "meta":
        raise ConfigError(
            "device",
            "cannot materialize on the meta device.",
            "Set device=cpu, cuda or cuda:N in the spec.",
        )
    real = [name for name, tensor in network.state_dict().items() if not tensor.is_meta]
    if real:
        raise ConfigError(
            "device",
            f"the network is not on the meta device ({real[0]} has values).",
            "Materialize only a network built with device=meta.",
        )
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    modules = [network.get_submodule(layer.name) for layer in spec.network.layers]
    check_memory(spec, modules)
    for layer, module in zip(spec.network.layers, modules, strict=True):
        _fill(layer, module, spec.seed, device, dtype, None)
        activation = getattr(network, f"{layer.name}_act", None)
        fresh = _activation(layer, device, dtype)
        if isinstance(activation, nn.Module) and fresh is not None:
            activation.to_empty(device=device)
            activation.load_state_dict(fresh.state_dict())
    return network


def state_layout(spec: RunSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The shape and dtype of every state_dict entry of the network that ``spec``
    describes, learnt on the meta device (nothing is allocated)."""
    dtype: torch.dtype = getattr(torch, spec.dtype)
    meta = torch.device("meta")
    blocks = [
        (layer.name, module, _activation(layer, meta, dtype))
        for layer, module in zip(
            spec.network.layers, _meta_layers(spec, meta, dtype), strict=True
        )
    ]
    return {
        name: (
            tuple(tensor.shape),
            dtype if tensor.is_floating_point() else tensor.dtype,
        )
        for name, tensor in Network(spec.network, blocks).state_dict().items()
    }


def _meta_layers(
    spec: RunSpec,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> list[nn.Module]:
    """Every layer built on the meta device and checked against its spec.

    The activations inside nested layers (residual blocks) are built for real on
    ``device`` (default: the CPU) in ``dtype``, as the network's own are.
    """
    _check_describable(spec)
    device = torch.device("cpu") if device is None else device
    dtype = torch.get_default_dtype() if dtype is None else dtype
    modules = []
    for layer in spec.network.layers:
        module = _meta_layer(layer, device, dtype)
        _check_parameters(module, layer)
        modules.append(module)
    return modules


def _meta_layer(
    layer: LayerSpec, device: torch.device, dtype: torch.dtype
) -> nn.Module:
    """One layer built on the meta device; a nested one gets its layers built first,
    each with its activation."""
    build = layers.get(layer.type).build
    if not layer.layers:
        with torch.device("meta"):
            return build(layer.input_shape, **layer.options)
    body = [
        (
            child.name,
            _meta_layer(child, device, dtype),
            _activation(child, device, dtype),
        )
        for child in layer.layers
    ]
    with torch.device("meta"):
        return build(
            layer.input_shape,
            body=body,
            body_shape=layer.layers[-1].output_shape,
            **layer.options,
        )


def _activation(
    layer: LayerSpec, device: torch.device, dtype: torch.dtype
) -> nn.Module | None:
    """The layer's activation module (None for identity).

    Built for real: an activation's own parameters (a PReLU slope) and buffers keep
    the values its constructor gives them.
    """
    if layer.activation.name == "identity":
        return None
    entry = activations.get(layer.activation.name)
    return entry.build(**layer.activation.params).to(device, dtype)


def _fill(
    layer: LayerSpec,
    module: nn.Module,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    weights: Mapping[str, torch.Tensor] | None,
) -> None:
    """Give ``module``'s parameters and buffers memory and values, once each.

    A parameter of a child module (``block.fc1.weight``) is filled like one of the
    layer's own; its generator is seeded from its whole path (``l1.block.fc1.weight``).
    """
    for parameter in layer.parameters:
        path = f"{layer.name}.{parameter.name}"
        if weights is None:
            tensor = _initialized(parameter, path, seed, device, dtype)
        else:
            tensor = _saved(weights, path, parameter.shape, device, dtype)
        _replace_parameter(module, parameter.name, tensor)
    if weights is None and device.type != "meta":
        for child in module.modules():
            finish = getattr(child, "finish_init", None)
            if callable(finish):
                finish()  # an embedding's padding row: zero, as torch's init gives
    persistent = _materialize_buffers(module, device, dtype)
    if weights is not None:
        for name, buffer in list(module.named_buffers()):
            if name in persistent:
                path = f"{layer.name}.{name}"
                saved = _saved(weights, path, tuple(buffer.shape), device, buffer.dtype)
                _replace_buffer(module, name, saved, persistent=True)


def _replace_parameter(module: nn.Module, path: str, tensor: torch.Tensor) -> None:
    """Put ``tensor`` in place of the parameter at ``path`` (``fc1.weight``) of
    ``module``, keeping whether it requires a gradient."""
    owner_path, _, name = path.rpartition(".")
    old = module.get_parameter(path)
    parameter = nn.Parameter(tensor, requires_grad=old.requires_grad)
    # Through setattr, so that a module that keeps its own list of its parameters
    # (torch.nn.LSTM's flat weights) sees the new one.
    setattr(module.get_submodule(owner_path), name, parameter)


def _replace_buffer(
    module: nn.Module, path: str, tensor: torch.Tensor, *, persistent: bool
) -> None:
    """Put ``tensor`` in place of the buffer at ``path`` of ``module``."""
    owner_path, _, name = path.rpartition(".")
    module.get_submodule(owner_path).register_buffer(
        name, tensor, persistent=persistent
    )


def _load_activation(
    activation: nn.Module,
    prefix: str,
    weights: Mapping[str, torch.Tensor],
    device: torch.device,
) -> None:
    """Saved values of an activation's own parameters and buffers, if it has any."""
    if device.type == "meta":
        return
    state = {
        name: weights[f"{prefix}.{name}"].to(tensor.device, tensor.dtype)
        for name, tensor in activation.state_dict().items()
    }
    if state:
        activation.load_state_dict(state)


def _check_weight_keys(weights: Mapping[str, torch.Tensor], network: Network) -> None:
    """The saved tensors are exactly the network's state dict (by key)."""
    expected = set(network.state_dict())
    extra = sorted(set(weights) - expected)
    missing = sorted(expected - set(weights))
    if extra:
        problem = f"saved tensors {extra[:3]} are not in the spec's network"
    elif missing:
        problem = f"no saved tensor {missing[0]!r}"
    else:
        return
    raise ConfigError("weights", f"{problem}.", "The weights belong to another spec.")


# ------------------------------------------------------------------------------------
# Memory: checked from the meta-built layers before anything is allocated
# ------------------------------------------------------------------------------------

#: The share of the available memory that a run (its network, input batch and
#: activations) may take; the rest is headroom for everything else the process holds.
MEMORY_HEADROOM = 0.9

#: The most bytes one tensor can have: torch counts a storage's size in int64, and
#: refuses a larger one even on the meta device.
_MAX_TENSOR_BYTES = 2**63 - 1


def _check_describable(spec: RunSpec) -> None:
    """Every tensor of the run (parameters, input batch, layer outputs) has a size
    that torch can describe, checked from the spec before anything is built.

    Without this, torch raises ``Storage size calculation overflowed`` from inside a
    layer's constructor, even on ``device=meta``.
    """
    dtype: torch.dtype = getattr(torch, spec.dtype)
    # Layers are built in the default dtype first, values are drawn in the sampling
    # dtype, then cast: the widest of the three counts.
    itemsize = max(
        dtype.itemsize,
        sampling_dtype(dtype).itemsize,
        torch.get_default_dtype().itemsize,
    )
    limit = "torch cannot describe a tensor of more than 2**63 bytes, even on "
    limit += "device=meta"
    for layer in spec.network.layers:
        for parameter in layer.parameters:
            if parameter.numel * itemsize > _MAX_TENSOR_BYTES:
                raise ConfigError(
                    f"model.layers.{layer.name}",
                    f"its {parameter.name} would have shape "
                    f"{list(parameter.shape)} ({parameter.numel:,} values); {limit}.",
                    "Make the layer smaller.",
                )
    rows = spec.batch_size
    shapes = [spec.network.input_shape]
    shapes += [layer.output_shape for layer in _every_layer(spec.network.layers)]
    widest = max(shapes, key=math.prod)
    values = rows * math.prod(widest)
    if values * itemsize > _MAX_TENSOR_BYTES:
        raise ConfigError(
            "batch_size",
            f"a batch of {rows:,} rows gives a tensor of shape {[rows, *widest]} "
            f"({values:,} values); {limit}.",
            "Use a smaller batch_size.",
        )


def estimate_bytes(modules: Iterable[nn.Module], dtype: torch.dtype) -> int:
    """Bytes that the parameters and buffers of meta-built ``modules`` will take.

    Floating-point tensors take ``dtype``; others (``num_batches_tracked``) keep
    their own.
    """
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            kind = dtype if tensor.is_floating_point() else tensor.dtype
            total += tensor.numel() * kind.itemsize
    return total


def available_bytes(device: torch.device) -> int | None:
    """Memory the device has free now, in bytes (None: unknown, or ``meta``).

    CPU: ``MemAvailable`` from ``/proc/meminfo`` (else the free physical pages),
    lowered to the container's cgroup limit if it sets one. CUDA: the free memory that
    ``torch.cuda.mem_get_info`` reports.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    candidates = [_mem_available(), _cgroup_available()]
    known = [value for value in candidates if value is not None]
    return min(known) if known else None


def batch_bytes(spec: RunSpec) -> int:
    """Bytes that a forward pass of ``spec.batch_size`` rows holds at most: the input
    batch, the output of every layer and of every activation (those in residual
    blocks too), and what recurrent and attention layers keep inside
    (:func:`~annfactory.sequence_layers.working_values`).

    Each output is counted, as autograd keeps them all for a backward pass; a pass
    without gradients frees them as it goes, so this is an upper bound for it.
    """
    dtype: torch.dtype = getattr(torch, spec.dtype)
    rows = spec.batch_size
    # The input is drawn in the sampling dtype, then cast.
    inputs = rows * math.prod(spec.network.input_shape)
    total = inputs * sampling_dtype(dtype).itemsize
    if sampling_dtype(dtype) != dtype:
        total += inputs * dtype.itemsize
    for layer in _every_layer(spec.network.layers):
        total += rows * _held_values(layer) * dtype.itemsize
    return total


def _held_values(layer: LayerSpec) -> int:
    """The values a forward pass of one sample keeps for one layer: its output, its
    activation's, and what a recurrent or attention layer keeps inside."""
    outputs = 1 if layer.activation.name == "identity" else 2
    inside = working_values(layer.type, layer.input_shape, layer.options)
    return math.prod(layer.output_shape) * outputs + inside


def _every_layer(layers: Sequence[LayerSpec]) -> Iterator[LayerSpec]:
    """Every layer, those nested in blocks included (each before its block)."""
    for layer in layers:
        yield from _every_layer(layer.layers)
        yield layer


def check_memory(
    spec: RunSpec, modules: Sequence[nn.Module], batch_key: str = "batch_size"
) -> None:
    """Refuse a run that would not fit on its device: the network's parameters and
    buffers, its input batch and the activations of a forward pass.

    The message names what takes the memory: ``batch_size`` when a smaller batch
    would fit (and how many rows do), else a transformer encoder whose attention
    takes most of it, else the size option of the layer whose width does
    (:func:`_widening_layer`), else the model. ``modules``: the layers, built on
    the meta device (or built); ``batch_key``: the option that set
    ``spec.batch_size`` (``task.batch_size`` for training's steps).

    Raises:
        MemoryLimitError: The estimate exceeds :data:`MEMORY_HEADROOM` of the
            available memory; says both, names what takes the memory, and points to
            ``device=meta``.
    """
    if spec.device == "meta":
        return
    device = torch.device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    network = estimate_bytes(modules, dtype)
    batch = batch_bytes(spec)
    needed = network + batch
    available = available_bytes(device)
    if available is None or needed <= MEMORY_HEADROOM * available:
        return
    rows = f"{spec.batch_size:,} row{'' if spec.batch_size == 1 else 's'}"
    on_device = f"{spec.device} has {_size(available)} available"
    # device=meta builds without memory; training refuses it.
    meta = "device=meta for a dry run without memory"
    or_meta = f", or {meta}" if batch_key == "batch_size" else ""
    per_row = batch / spec.batch_size
    fitting_rows = int((MEMORY_HEADROOM * available - network) // per_row)
    if 1 <= fitting_rows < spec.batch_size:
        raise MemoryLimitError(
            batch_key,
            _needs(needed, network, batch, spec, rows) + f"; {on_device}.",
            f"Use a smaller {batch_key} (at most {fitting_rows:,} fit){or_meta}.",
        )
    attention = _attention_bytes(spec, dtype, needed)
    if attention is not None:
        layer, share = attention
        raise MemoryLimitError(
            f"model.layers.{layer.name}",
            f"its attention over {layer.input_shape[0]:,} steps makes the run need "
            f"{_size(needed)}, {_size(share)} of it for its nhead x steps x steps "
            f"weights for a batch of {rows}; {on_device}.",
            f"Use a shorter sequence (pool its steps first){or_meta}.",
        )
    culprit = _widening_layer(spec, modules, dtype, needed)
    if culprit is None:
        raise MemoryLimitError(
            "model",
            _needs(needed, network, batch, spec, rows) + f"; {on_device}.",
            "Make the network smaller" + (f", or use {meta}." if or_meta else "."),
        )
    layer, option, share, after = culprit
    key = f"model.layers.{layer.name}.{option}"
    parameters = "its parameters" + (f" and {after}'s" if after else "")
    raise MemoryLimitError(
        key,
        f"{layer.options[option]:,} makes the run need {_size(needed)}, "
        f"{_size(share)} of it for {layer.name}'s outputs for a batch of {rows} and "
        f"{parameters}; {on_device}.",
        f"Use a smaller {key}{or_meta}.",
    )


#: Layer options that set the width of its output, one of which the guard names
#: when it is what takes the memory.
_SIZE_OPTIONS = ("out_features", "out_channels", "hidden_size", "embedding_dim")


def _widening_layer(
    spec: RunSpec, modules: Sequence[nn.Module], dtype: torch.dtype, needed: int
) -> tuple[LayerSpec, str, int, str | None] | None:
    """The layer whose size option takes most of the run's memory, with that option,
    the bytes it accounts for and the name of the layer after it (None for the last);
    None if no one layer takes most of it.

    The suspect is the one layer that sets the widest output (``out_features``,
    ``out_channels``); layers after it that keep that width (a batch norm) are its
    own. It accounts for their outputs and parameters and the parameters of the layer
    that takes its output, and must account for at least half of the run.
    """
    layers = spec.network.layers
    widths = [math.prod(layer.output_shape) for layer in layers]
    widest = max(widths)
    setters = [
        (index, option)
        for index, layer in enumerate(layers)
        if widths[index] == widest
        for option in _SIZE_OPTIONS
        if isinstance(layer.options.get(option), int)
    ]
    if len(setters) != 1:
        return None  # several layers as wide (an mlp's width): the model's size
    first, option = setters[0]
    last = first
    while last + 1 < len(layers) and widths[last + 1] == widest:
        last += 1
    # The outputs of the layers (and of those nested in them), and the parameters.
    held = sum(_held_values(inner) for inner in _every_layer(layers[first : last + 1]))
    outputs = spec.batch_size * held * dtype.itemsize
    share = outputs + estimate_bytes(modules[first : last + 2], dtype)
    if share < needed / 2:
        return None
    after = layers[last + 1].name if last + 1 < len(layers) else None
    return layers[first], option, share, after


def _attention_bytes(
    spec: RunSpec, dtype: torch.dtype, needed: int
) -> tuple[LayerSpec, int] | None:
    """The transformer encoder whose attention weights take half the run's memory or
    more, with their bytes; None if none does."""
    for layer in _every_layer(spec.network.layers):
        values = attention_values(layer.type, layer.input_shape, layer.options)
        share = spec.batch_size * values * dtype.itemsize
        if share and share >= needed / 2:
            return layer, share
    return None


def _needs(needed: int, network: int, batch: int, spec: RunSpec, rows: str) -> str:
    return (
        f"the run needs {_size(needed)}: {_size(network)} for the network's "
        f"parameters and buffers ({spec.network.num_params:,} parameters in "
        f"{spec.dtype}) and {_size(batch)} for a batch of {rows} and its activations"
    )


def _size(count: float) -> str:
    """Bytes in words: ``1,120.0 GB``, ``22.5 MB``, ``5,640 bytes``."""
    if count >= 1e8:
        return f"{count / 1e9:,.1f} GB"
    if count >= 1e5:
        return f"{count / 1e6:,.1f} MB"
    return f"{int(count):,} bytes"


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


#: cgroup v2 and v1 files: limit, usage, and the statistics that name the page cache
#: that could be reclaimed (counted in the usage).
_CGROUP_FILES = (
    (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory.current",
        "/sys/fs/cgroup/memory.stat",
        "inactive_file",
    ),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        "/sys/fs/cgroup/memory/memory.stat",
        "total_inactive_file",
    ),
)


def _cgroup_available() -> int | None:
    """The memory left under this container's cgroup limit, if it sets one."""
    for limit_file, usage_file, stat_file, reclaimable in _CGROUP_FILES:
        try:
            limit_text = Path(limit_file).read_text(encoding="ascii").strip()
            usage = int(Path(usage_file).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 2**60:
            return None  # no limit
        try:
            for line in Path(stat_file).read_text(encoding="ascii").splitlines():
                name, _, value = line.partition(" ")
                if name == reclaimable:
                    usage -= int(value)
        except (OSError, ValueError):
            pass
        return max(int(limit_text) - usage, 0)
    return None


def _initialized(
    parameter: ParameterSpec,
    path: str,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A new tensor for ``parameter``, allocated once and filled once."""
    if device.type == "meta":
        return torch.empty(parameter.shape, device=device, dtype=dtype)
    sample_dtype = sampling_dtype(dtype)
    tensor = torch.empty(parameter.shape, dtype=sample_dtype)
    generator = seeded_generator(seed, path)
    scheme = inits.get(parameter.init.name)
    with torch.no_grad():
        try:
            scheme.apply(tensor, generator=generator, **parameter.init.params)
        except RuntimeError as error:
            if isinstance(error, torch.OutOfMemoryError):
                raise
            # torch refuses options out of the sampling dtype's range itself
            # (constant val=1e39 in float32, uniform with b - a beyond float64's).
            reason = str(error).strip().splitlines()[0].rstrip(".")
            raise _unusable_init(parameter, path, dtype, f"torch: {reason}") from None
    if device.type != "cpu" or dtype != sample_dtype:
        tensor = tensor.to(device=device, dtype=dtype)
    _check_finite(tensor, parameter, path, dtype)
    return tensor


def _check_finite(
    tensor: torch.Tensor, parameter: ParameterSpec, path: str, dtype: torch.dtype
) -> None:
    """Every value the init drew is finite in the run's dtype: options too large for
    it (``init=normal init.std=1e308``, ``std=1e5`` in float16) give inf or NaN."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return
    # The extremes are inf or NaN if any value is (NaN propagates): one pass without
    # a mask the size of the tensor, a twentieth of isfinite(tensor).all()'s time.
    low, high = torch.aminmax(tensor)
    if math.isfinite(float(low)) and math.isfinite(float(high)):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    count = f"{bad:,} of its {tensor.numel():,} values are"
    if bad == tensor.numel():
        count = "all its values are" if bad > 1 else "its value is"
    raise _unusable_init(parameter, path, dtype, f"{count} inf or NaN")


def _unusable_init(
    parameter: ParameterSpec, path: str, dtype: torch.dtype, what: str
) -> ConfigError:
    """The error for an init whose options give no finite values in ``dtype``: names
    the init and its options, the parameter, and the options to lower."""
    dtype_name = str(dtype).removeprefix("torch.")
    largest = torch.finfo(dtype).max
    key = parameter.key or path
    large = {
        name: value
        for name, value in parameter.init.params.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) > 1
    }
    if large:
        example = " ".join(
            f"{key}.{name}={-1 if value < 0 else 1}" for name, value in large.items()
        )
        hint = f"Use values that {dtype_name} can hold, e.g. {example}."
    else:
        hint = "Give the init other options, or choose another init."
    return ConfigError(
        key,
        f"{parameter.init.describe()} cannot fill {path} in {dtype_name} "
        f"(largest value {largest:.3g}): {what}.",
        hint,
    )


def _saved(
    weights: Mapping[str, torch.Tensor],
    path: str,
    shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A saved tensor, checked against the spec's shape."""
    if path not in weights:
        raise ConfigError(
            "weights",
            f"no saved tensor {path!r}.",
            "The weights belong to another spec.",
        )
    tensor = weights[path]
    if tuple(tensor.shape) != tuple(shape):
        raise ConfigError(
            "weights",
            f"{path} has shape {list(tensor.shape)}, the spec says {list(shape)}.",
            "The weights belong to another spec.",
        )
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    return tensor.to(device=device, dtype=dtype).clone()


def _check_parameters(module: nn.Module, layer: LayerSpec) -> None:
    built = {name: tuple(p.shape) for name, p in module.named_parameters()}
    declared = {p.name: p.shape for p in layer.parameters}
    if built != declared:
        raise ConfigError(
            f"model.layers.{layer.name}.type",
            f"layer type {layer.type!r} built parameters {built}, "
            f"but declares {declared}.",
            "Fix the layer type's shape rule so it matches its module.",
        )


def _materialize_buffers(
    module: nn.Module, device: torch.device, dtype: torch.dtype
) -> set[str]:
    """Give buffers (running statistics) real memory and their initial values.

    Returns:
        The paths of the buffers that the state dict holds (persistent ones).
    """
    buffers = list(module.named_buffers())
    if not buffers:
        return set()
    persistent = {name for name, _ in buffers} & set(module.state_dict(keep_vars=True))
    for name, buffer in buffers:
        buffer_dtype = dtype if buffer.is_floating_point() else buffer.dtype
        zeros = torch.zeros(buffer.shape, device=device, dtype=buffer_dtype)
        _replace_buffer(module, name, zeros, persistent=name in persistent)
    if device.type != "meta":
        for child in module.modules():
            reset = getattr(child, "reset_running_stats", None)
            if callable(reset):
                reset()
    return persistent
