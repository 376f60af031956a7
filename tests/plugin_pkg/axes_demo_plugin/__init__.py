"""A plugin package of annfactory, kept for its tests: what a package adds from outside.

- a config group of its own, ``noise`` (``+noise=gaussian``, ``+noise=uniform``): its
  options name entries of the plugin's ``noises`` registry, and its parsed value
  reaches tasks as ``spec.extras["noise"]``;
- a task, ``probe`` (``task=probe``): runs a few noisy random batches through the
  network and reports the output's statistics;
- a model type, ``tower`` (``model=tower``): floors of linear relu layers, each half
  as wide as the one below, then ``out``.

Its YAML options live in ``conf/`` (this package's), which
``hydra_plugins/axes_demo_searchpath`` puts on Hydra's search path. annfactory loads
this module through the entry point in ``axes_demo_plugin-0.1.dist-info`` the first
time a registry misses a name. Nothing here imports torch at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from annfactory import ConfigError, Param, Registry
from annfactory.groups import ConfigGroup, groups
from annfactory.models import Expansion, LayerEntry, model_types
from annfactory.params import REQUIRED, check_keys, validate_params
from annfactory.tasks import TaskContext, tasks


@dataclass(frozen=True)
class Noise:
    """A kind of input noise and its parameters."""

    params: Mapping[str, Param] = field(default_factory=dict)
    doc: str = ""


noises: Registry[Noise] = Registry("noise")
noises.register(
    "gaussian", Noise({"std": Param(float, 0.1, "standard deviation", low=0)})
)
noises.register(
    "uniform", Noise({"width": Param(float, 1.0, "width of the interval", low=0)})
)


def parse_noise(node: Any, key: str) -> dict[str, Any]:
    """The ``noise`` node (a name, or ``{name: ..., <params>}``) as plain data."""
    if isinstance(node, str):
        node = {"name": node}
    if not isinstance(node, Mapping):
        raise ConfigError(key, f"{node!r} is not a noise.", "Write +noise=gaussian.")
    name = node.get("name")
    entry = noises.get(name, key=f"{key}.name")
    given = {k: v for k, v in node.items() if k != "name"}
    params = validate_params(given, entry.params, key, f"noise {name!r}")
    return {"name": name, **params}


groups.register(
    "noise",
    ConfigGroup(
        doc="noise added to the probe task's input",
        registry=noises,
        parse=parse_noise,
        choice=True,
    ),
)


@tasks.register("probe", params={"repeats": Param(int, 2, "batches to run", low=1)})
def run(context: TaskContext) -> dict[str, Any]:
    """Run ``repeats`` noisy random batches through the network; report the output.

    Saves the run like the built-in tasks (``spec.yaml``, with the noise, and the
    weights).
    """
    import torch

    from annfactory.factory import build_network
    from annfactory.tasks import save_model

    spec = context.spec
    noise = spec.extras.get("noise")
    model = build_network(spec).eval()
    generator = torch.Generator().manual_seed(spec.seed)
    outputs = []
    for _ in range(context.options["repeats"]):
        x = torch.randn(spec.batch_size, spec.network.in_features, generator=generator)
        if noise is not None and noise["name"] == "gaussian":
            x = x + noise["std"] * torch.randn(x.shape, generator=generator)
        elif noise is not None:
            x = x + noise["width"] * (torch.rand(x.shape, generator=generator) - 0.5)
        with torch.no_grad():
            outputs.append(model(x.to(getattr(torch, spec.dtype))))
    output = torch.cat(outputs).double()
    save_model(context, model)
    print(
        f"probe: {context.options['repeats']} batches, noise "
        f"{noise['name'] if noise else 'none'}: output mean "
        f"{output.mean().item():.4f} std {output.std().item():.4f}",
        file=context.out,
    )
    return {
        "probe": {
            "noise": noise["name"] if noise else None,
            "output_mean": output.mean().item(),
            "output_std": output.std().item(),
        }
    }


_TOWER = {
    "in_features": Param(int, REQUIRED, "input size", low=1),
    "out_features": Param(int, REQUIRED, "output size", low=1),
    "width": Param(int, 64, "width of the first floor", low=1),
    "floors": Param(int, 3, "hidden layers, each half as wide as the one below", low=1),
}


@model_types.register("tower", params=_TOWER)
def tower(model: Mapping[str, Any], key: str) -> Expansion:
    """Floors of linear relu layers, each half as wide as the one below, then out."""
    check_keys(model, ("type", *_TOWER), key, "tower key")
    given = {name: model[name] for name in _TOWER if name in model}
    sizes = validate_params(given, _TOWER, key, "model 'tower'")
    # Every field of a generated layer points at the key it came from.
    keys = {"type": f"{key}.type", "activation": f"{key}.type"}
    layers = [
        LayerEntry(
            f"floor{floor}",
            {
                "type": "linear",
                "out_features": max(sizes["width"] >> (floor - 1), 1),
                "activation": "relu",
            },
            {**keys, "out_features": f"{key}.width"},
        )
        for floor in range(1, sizes["floors"] + 1)
    ]
    out = {"type": "linear", "out_features": sizes["out_features"]}
    layers.append(
        LayerEntry("out", out, {**keys, "out_features": f"{key}.out_features"})
    )
    return Expansion((sizes["in_features"],), layers)
