"""A user's own Hydra application uses annfactory's config groups (README's example)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_server import script_server

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)
    return next(block for block in blocks if marker in block)


@pytest.mark.slow
def test_user_app_outside_the_repository_uses_annfactory_groups(tmp_path: Path) -> None:
    app = tmp_path / "my_app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "app.yaml").write_text(_block("yaml", "pkg://annfactory.conf"))
    task = _block("python", "@hydra.main")
    (app / "train.py").write_text(
        "import json\nimport hydra\nimport annfactory\n\n"
        + task
        + "    print(json.dumps({'params': sum(p.numel() for p in model.parameters()),"
        " 'layers': [layer.name for layer in model.spec.layers],"
        " 'init': model.spec.layers[0].weight_init.name, 'lr': cfg.lr}))\n\n"
        "if __name__ == '__main__':\n    train()\n"
    )
    done = script_server().run(
        [
            sys.executable,
            "train.py",
            "model.depth=4",
            "init=kaiming_normal",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        cwd=app,
        env=os.environ,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["layers"] == ["hidden1", "hidden2", "hidden3", "hidden4", "out"]
    # mlp defaults: in 8, width 32, out 2.
    assert result["params"] == 8 * 32 + 32 + 3 * (32 * 32 + 32) + 32 * 2 + 2
    assert result["init"] == "kaiming_normal"
    assert result["lr"] == 0.001


@pytest.mark.slow
def test_readme_model_file_of_ones_own_builds(run_cli: Any, tmp_path: Path) -> None:
    text = _block("yaml", "my_configs/model/deep.yaml")
    (tmp_path / "my_configs" / "model").mkdir(parents=True)
    (tmp_path / "my_configs" / "model" / "deep.yaml").write_text(text)
    result = run_cli("--config-dir", str(tmp_path / "my_configs"), "model=deep")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    # fc1 16->64 (+bias), layer_norm 64 (weight, bias), head 64->4 (+bias).
    assert metrics["total_params"] == 16 * 64 + 64 + 2 * 64 + 64 * 4 + 4
    assert metrics["output_shape"] == [5, 4]
    assert metrics["parameters"]["fc1.weight"]["init"].startswith("kaiming_normal")
    assert metrics["parameters"]["head.weight"]["init"].startswith("xavier_uniform")
