"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int) -> None:
    namespace: dict[str, object] = {"__name__": f"readme_block_{index}"}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)
    model = namespace.get("model")
    assert isinstance(model, torch.nn.Module)
    assert model(torch.randn(4, model.spec.in_features)).shape[0] == 4  # type: ignore[attr-defined, operator]


def test_readme_registration_example_builds_what_it_says() -> None:
    block = next(b for b in BLOCKS if "scaled_linear" in b)
    namespace: dict[str, object] = {"__name__": "readme_registration"}
    exec(compile(block, "README.md registration", "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, torch.nn.Module)
    layer = model.get_submodule("linear1")
    assert type(layer).__name__ == "ScaledLinear"
    assert type(model.get_submodule("linear1_act")).__name__ == "Swish"
    spec = model.spec  # type: ignore[attr-defined]
    assert spec.layers[0].parameters[0].init.name == "scaled_normal"
    # default_inits of the custom layer: bias zeros.
    assert torch.equal(layer.bias, torch.zeros(3))
    # scaled_normal: std = 1 / fan_in = 1 / 3 on a 3x3 weight; just check the scale.
    assert 0 < layer.weight.abs().max() < 3
