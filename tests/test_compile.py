"""compile=true: the forward pass through torch.compile matches eager."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

import annfactory


def test_compile_is_off_by_default_and_validated() -> None:
    assert annfactory.to_spec(annfactory.compose([])).compile is False
    assert annfactory.to_spec(annfactory.compose(["compile=true"])).compile is True
    with pytest.raises(
        annfactory.ConfigError, match=r"^compile: 'yes' is not a boolean"
    ):
        annfactory.to_spec(annfactory.compose(["compile=yes"]))


@pytest.mark.slow
def test_compiled_network_matches_eager() -> None:
    model = annfactory.build_model(annfactory.compose(["model=mlp"])).eval()
    x = torch.randn(16, 8)
    fast = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x))


@pytest.mark.slow
def test_compile_true_on_the_command_line(run_cli: Any) -> None:
    result = run_cli("model=demo", "compile=true", timeout=300)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["compile"]["matches_eager"] is True
    assert metrics["compile"]["max_abs_difference"] < 1e-5
    assert metrics["compile"]["compile_s"] > 0
    assert "torch.compile: compiled in" in result.stdout
    spec = (result.run_dir / "spec.yaml").read_text()
    assert "compile: true" in spec
