"""Saved runs kept as fixtures: runs saved by an earlier annfactory still load, give
the same outputs, and their configs still compose to the same bits.

``tests/fixtures/runs/<name>/`` holds what the forward task saved (``spec.yaml``,
``weights.safetensors``), the overrides it was composed from (``overrides.yaml``) and
its random input batch and output (``output.safetensors``); they were written by
``tests/fixtures/make_runs.py``. A change that alters what is drawn for a seed (the
seed hashing, an init, the sampling dtype) fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import annfactory
from annfactory import load_run, load_spec
from annfactory.factory import build_network
from annfactory.tasks.forward import random_input

RUNS = Path(__file__).resolve().parent / "fixtures" / "runs"

#: The saved runs (each a folder of RUNS).
NAMES = [
    "demo",
    "mlp-tanh-kaiming",
    "batch-norm-float64",
    "mlp-orthogonal-bfloat16",
]


def test_every_saved_run_is_tested() -> None:
    assert sorted(path.name for path in RUNS.iterdir() if path.is_dir()) == sorted(
        NAMES
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_saved_run_loads_and_gives_its_saved_outputs(name: str) -> None:
    run = RUNS / name
    spec = load_spec(run)
    model = load_run(run).eval()
    saved = load_file(str(run / "output.safetensors"))
    dtype = getattr(torch, spec.dtype)

    x = random_input(spec, torch.device("cpu"), dtype)
    assert x.dtype == saved["input"].dtype == dtype
    assert torch.equal(x, saved["input"])  # the input is drawn like the weights
    with torch.no_grad():
        y = model(x)
    assert y.dtype == saved["output"].dtype
    # The weights are the same bits; a matrix product may round differently on
    # another CPU's kernels, so outputs agree to the dtype's precision.
    torch.testing.assert_close(y, saved["output"])


@pytest.mark.parametrize("name", NAMES)
def test_composing_a_saved_run_s_config_again_gives_the_same_bits(name: str) -> None:
    run = RUNS / name
    overrides = yaml.safe_load((run / "overrides.yaml").read_text())
    spec = annfactory.to_spec(annfactory.compose(overrides))
    assert spec == load_spec(run)

    saved = load_file(str(run / "weights.safetensors"))
    built = build_network(spec).state_dict()
    assert sorted(built) == sorted(saved)
    for key, tensor in built.items():
        assert tensor.dtype == saved[key].dtype, key
        assert torch.equal(tensor, saved[key]), key
