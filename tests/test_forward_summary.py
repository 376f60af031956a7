"""The forward task's torchinfo summary: mult-adds in a unit a reader understands."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

import annfactory
from annfactory.tasks import run_named_task


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        # 5 rows x 26 weights and biases.
        (["model=demo"], "Total mult-adds: 130"),
        # 100 rows x (8*1000 + 1000 + 1000*1000 + 1000 + 1000*2 + 2) = 101,200,200.
        (
            ["model=mlp", "model.width=1000", "batch_size=100"],
            "Total mult-adds (millions): 101.20",
        ),
    ],
    ids=["exact", "millions"],
)
def test_mult_adds_are_printed_in_a_proper_unit(
    tmp_path: Path, overrides: list[str], line: str
) -> None:
    spec = annfactory.to_spec(annfactory.compose(overrides))
    out = io.StringIO()
    run_named_task(None, spec, tmp_path, out=out)
    summary = (tmp_path / "summary.txt").read_text()
    assert re.search(rf"^{re.escape(line)}$", summary, re.M), summary
    assert summary.strip() in out.getvalue()
    assert "Units." not in out.getvalue()
