"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import annfactory

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
#: Blocks that build a model at top level (the others are a plugin module and an
#: application's task function, exercised below and in test_user_app.py).
MODEL_BLOCKS = [block for block in BLOCKS if re.search(r"^model = ", block, re.M)]


def _exec(block: str, name: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": name}
    exec(compile(block, f"README.md {name}", "exec"), namespace)
    return namespace


def test_readme_has_python_examples() -> None:
    assert len(MODEL_BLOCKS) >= 2
    assert any("annfactory_plugin.py" in block for block in BLOCKS)
    assert any("@hydra.main" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(MODEL_BLOCKS)))
def test_readme_model_block_runs(index: int) -> None:
    model = _exec(MODEL_BLOCKS[index], f"block_{index}")["model"]
    assert isinstance(model, annfactory.network.Network)
    assert model(torch.randn(4, model.spec.in_features)).shape[0] == 4


def test_readme_registration_example_builds_what_it_says() -> None:
    block = next(b for b in MODEL_BLOCKS if "scaled_linear" in b)
    model = _exec(block, "registration")["model"]
    assert isinstance(model, torch.nn.Module)
    layer = model.get_submodule("linear1")
    assert type(layer).__name__ == "ScaledLinear"
    assert type(model.get_submodule("linear1_act")).__name__ == "Swish"
    assert model.spec.layers[0].parameters[0].init.name == "scaled_normal"  # type: ignore[union-attr]
    assert torch.equal(layer.bias, torch.zeros(3))  # default_inits: bias zeros


def test_readme_plugin_module_registers_what_the_command_uses() -> None:
    block = next(b for b in BLOCKS if "annfactory_plugin.py" in b)
    _exec(block, "my_extras.annfactory_plugin")
    cfg = annfactory.compose(
        [
            "model.layers.linear1.weight_init=scaled_constant",
            "model.layers.linear1.activation=clip",
        ]
    )
    model = annfactory.build_model(cfg)
    assert torch.equal(model.linear1.weight, torch.full((3, 3), 0.25))
    assert type(model.get_submodule("linear1_act")).__name__ == "Clip"
