"""Spec builders shared by the tests (plain data through ``annfactory.parse_run``)."""

from __future__ import annotations

from typing import Any

import annfactory


def one_linear_layer(
    fan_in: int,
    fan_out: int,
    weight_init: Any = "default",
    bias_init: Any = "default",
    activation: Any = "identity",
    **top: Any,
) -> annfactory.RunSpec:
    """A network of one linear layer ``l1``, ``fan_in`` -> ``fan_out``; ``top`` holds
    top-level keys (``seed``, ``dtype``, ...)."""
    layer = {
        "type": "linear",
        "out_features": fan_out,
        "activation": activation,
        "weight_init": weight_init,
        "bias_init": bias_init,
    }
    model = {"type": "sequential", "in_features": fan_in, "layers": {"l1": layer}}
    return annfactory.parse_run({"model": model, **top})
