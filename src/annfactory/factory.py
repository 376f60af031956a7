"""From a spec to an initialized ``nn.Module``: registry look-ups and one pass of init.

Layers are built on the meta device, so PyTorch's default init never runs. Each
parameter is then allocated once and filled once, on the CPU, from its own generator
seeded from ``(seed, parameter path)``: the same seed gives bit-identical weights on
every device and build path, and changing one layer leaves every other layer's weights
as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn

from annfactory.activations import activations
from annfactory.errors import ConfigError, DeviceError
from annfactory.inits import inits
from annfactory.layers import layers
from annfactory.network import Network
from annfactory.spec import LayerSpec, ParameterSpec, RunSpec

__all__ = ["build_network", "parameter_seed", "resolve_device"]


def parameter_seed(seed: int, path: str) -> int:
    """The seed of one parameter's generator, from the run seed and its path.

    Stable across processes, platforms and Python versions (unlike ``hash``).
    """
    digest = hashlib.blake2b(f"{seed}:{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


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

    Args:
        spec: A resolved spec (see :func:`annfactory.to_spec`).
        weights: Saved tensors by state_dict key (``linear1.weight``, buffers too):
            used instead of the inits, each checked against the spec's shapes.

    Returns:
        The network on ``spec.device`` in ``spec.dtype``. With ``device="meta"`` its
        parameters have shapes but no memory and no values.
    """
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    blocks = []
    for layer in spec.network.layers:
        with torch.device("meta"):
            module = layers.get(layer.type).build(layer.in_features, **layer.options)
        activation = None
        if layer.activation.name != "identity":
            # Built for real: an activation's own parameters (a PReLU slope) and
            # buffers keep the values its constructor gives them.
            entry = activations.get(layer.activation.name)
            activation = entry.build(**layer.activation.params).to(device, dtype)
        _check_parameters(module, layer)
        for parameter in layer.parameters:
            old = module._parameters[parameter.name]
            assert old is not None
            path = f"{layer.name}.{parameter.name}"
            if weights is None:
                tensor = _initialized(parameter, path, spec.seed, device, dtype)
            else:
                tensor = _saved(weights, path, parameter.shape, device, dtype)
            module._parameters[parameter.name] = nn.Parameter(
                tensor, requires_grad=old.requires_grad
            )
        _materialize_buffers(module, device, dtype)
        if weights is not None:
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    path = f"{layer.name}.{name}"
                    saved = _saved(
                        weights, path, tuple(buffer.shape), device, buffer.dtype
                    )
                    module._buffers[name] = saved
        blocks.append((layer.name, module, activation))
    if weights is not None:
        expected = {f"{b[0]}.{n}" for b in blocks for n, _ in b[1].state_dict().items()}
        extra = sorted(set(weights) - expected)
        if extra:
            raise ConfigError(
                "weights",
                f"saved tensors {extra[:3]} are not in the spec's network.",
                "The weights belong to another spec.",
            )
    try:
        network = Network(spec.network, blocks)
    except KeyError as error:  # a layer name that clashes with a Module attribute
        raise ConfigError(
            "model.layers",
            f"a layer name cannot be used: {error.args[0]}",
            "Rename the layer.",
        ) from None
    return network


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
    # Sample on the CPU in float32 (float64 for float64 runs) so values do not depend
    # on the device, and so half-precision dtypes get the same draws as float32.
    sample_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    tensor = torch.empty(parameter.shape, dtype=sample_dtype)
    generator = torch.Generator().manual_seed(parameter_seed(seed, path))
    scheme = inits.get(parameter.init.name)
    with torch.no_grad():
        scheme.apply(tensor, generator=generator, **parameter.init.params)
    if device.type != "cpu" or dtype != sample_dtype:
        tensor = tensor.to(device=device, dtype=dtype)
    return tensor


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
    built = {name: tuple(p.shape) for name, p in module.named_parameters(recurse=False)}
    declared = {p.name: p.shape for p in layer.parameters}
    nested = [name for name, _ in module.named_parameters() if "." in name]
    if built != declared or nested:
        raise ConfigError(
            f"model.layers.{layer.name}.type",
            f"layer type {layer.type!r} built parameters {built or nested}, "
            f"but declares {declared}.",
            "Fix the layer type's shapes() so it matches its module.",
        )


def _materialize_buffers(
    module: nn.Module, device: torch.device, dtype: torch.dtype
) -> None:
    """Give buffers (running statistics) real memory and their initial values."""
    for name, buffer in list(module._buffers.items()):
        if buffer is None:
            continue
        buffer_dtype = dtype if buffer.is_floating_point() else buffer.dtype
        module._buffers[name] = torch.zeros(
            buffer.shape, device=device, dtype=buffer_dtype
        )
    reset = getattr(module, "reset_running_stats", None)
    if callable(reset) and device.type != "meta":
        reset()
