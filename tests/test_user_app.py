"""A user's own Hydra application uses annfactory's config groups (README's example)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "model.depth=4",
            "init=kaiming_normal",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["layers"] == ["hidden1", "hidden2", "hidden3", "hidden4", "out"]
    # mlp defaults: in 8, width 32, out 2.
    assert result["params"] == 8 * 32 + 32 + 3 * (32 * 32 + 32) + 32 * 2 + 2
    assert result["init"] == "kaiming_normal"
    assert result["lr"] == 0.001
