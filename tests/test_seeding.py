"""Seeded draws (``annfactory.seeding``): one named stream of the run seed each.

The values drawn are pinned elsewhere too: ``parameter_seed`` and the demo's weights
in ``test_factory.py``, the input batch of saved runs in ``test_run_fixtures.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from annfactory import factory, seeding
from annfactory.tasks import diagnose, forward
from specs import one_linear_layer

#: random_labels of a 10-class network for seed 7, as the release before seeding.py
#: drew them (tasks/diagnose.py): the labels are a promise across releases too.
PINNED_LABELS = [3, 8, 9, 7, 9, 0, 5, 6, 8, 0, 6, 6]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (factory, "parameter_seed"),
        (factory, "seeded_generator"),
        (factory, "sampling_dtype"),
        (forward, "random_input"),
        (diagnose, "random_labels"),
    ],
)
def test_the_old_names_are_the_seeding_functions(module: Any, name: str) -> None:
    assert getattr(module, name) is getattr(seeding, name)
    assert name in module.__all__


def test_random_labels_give_their_pinned_values() -> None:
    spec = one_linear_layer(3, 10, seed=7)
    labels = seeding.random_labels(spec, 12, torch.device("cpu"))
    assert labels.dtype == torch.int64
    assert labels.tolist() == PINNED_LABELS


def test_draws_ignore_the_global_generator_and_each_other() -> None:
    spec = one_linear_layer(3, 10, seed=7, batch_size=6)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    first = seeding.random_input(spec, cpu, torch.float32)
    seeding.random_labels(spec, 6, cpu)
    torch.manual_seed(1)
    torch.randn(100)
    again = seeding.random_input(spec, cpu, torch.float32)
    assert torch.equal(first, again)
    assert seeding.random_labels(spec, 12, cpu).tolist() == PINNED_LABELS


def test_the_input_is_a_standard_normal_batch_of_the_spec_s_shape() -> None:
    spec = one_linear_layer(50, 2, seed=3, batch_size=400)
    x = seeding.random_input(spec, torch.device("cpu"), torch.float64)
    assert x.shape == (400, 50)
    assert x.dtype == torch.float64
    # 20,000 draws: the mean's standard error is 0.007.
    assert abs(x.mean().item()) < 0.04
    assert x.std().item() == pytest.approx(1.0, abs=0.03)
    other_seed = one_linear_layer(50, 2, seed=4, batch_size=400)
    assert not torch.equal(
        x, seeding.random_input(other_seed, torch.device("cpu"), torch.float64)
    )


def test_half_precision_input_is_the_float32_draw_rounded() -> None:
    spec = one_linear_layer(4, 2, seed=1, batch_size=8)
    cpu = torch.device("cpu")
    full = seeding.random_input(spec, cpu, torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        assert seeding.sampling_dtype(dtype) == torch.float32
        assert torch.equal(seeding.random_input(spec, cpu, dtype), full.to(dtype))
    assert seeding.sampling_dtype(torch.float64) == torch.float64


def test_the_meta_input_has_a_shape_and_no_values() -> None:
    spec = one_linear_layer(4, 2, batch_size=3)
    x = seeding.random_input(spec, torch.device("meta"), torch.float32)
    assert x.is_meta
    assert x.shape == (3, 4)
