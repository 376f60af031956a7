"""Regressions of issue 9: overrides that did something else than they said, and
messages that sent the user in a circle.

Most go through the public API (``compose``, ``to_spec``, ``build_model``); the few
that depend on the command line itself go through ``scripts/run.py``.
"""

from __future__ import annotations

import pytest
from torch import nn

import annfactory
from annfactory import ConfigError, compose, to_spec

# ------------------------------------------------------------------------------------
# A layer named like a generated module
# ------------------------------------------------------------------------------------


def test_a_layer_named_like_an_activation_module_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.out_act: the layer name 'out_act' is taken by the "
        r"activation \(softmax\) of layer 'out'\.\n  Give the layer another name, "
        r"e\.g\. out_act2",
    ):
        to_spec(compose(["+model.layers.out_act={type: linear, out_features: 2}"]))


def test_the_suggested_layer_name_builds_exactly_the_spec() -> None:
    model = annfactory.build_model(
        compose(["+model.layers.out_act2={type: linear, out_features: 2}"])
    )
    children = dict(model.named_children())
    assert list(children) == [
        "linear1",
        "linear1_act",
        "linear2",
        "linear2_act",
        "out",
        "out_act",
        "out_act2",
    ]
    assert isinstance(children["out_act"], nn.Softmax)
    assert isinstance(children["out_act2"], nn.Linear)


def test_a_layer_named_like_an_identity_activation_is_allowed() -> None:
    # Identity adds no module, so nothing is replaced.
    model = annfactory.build_model(
        compose(
            [
                "model.layers.out.activation=identity",
                "+model.layers.out_act={type: linear, out_features: 2}",
            ]
        )
    )
    names = [name for name, _ in model.named_children()]
    assert names[-2:] == ["out", "out_act"]
    assert isinstance(model.get_submodule("out_act"), nn.Linear)


# ------------------------------------------------------------------------------------
# Mandatory values (???) of group options
# ------------------------------------------------------------------------------------


def test_a_mandatory_value_of_a_group_option_can_be_set() -> None:
    cfg = compose(
        [
            "model=demo",
            "+layer@model.layers.extra=linear",
            "model.layers.extra.out_features=4",
        ]
    )
    spec = to_spec(cfg)
    assert spec.network.layers[-1].name == "extra"
    assert (spec.network.layers[-1].in_features, spec.network.out_features) == (2, 4)
    assert spec.network.num_params == 26 + 2 * 4 + 4


def test_a_mandatory_value_left_unset_names_its_path() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.extra\.out_features: has no value \(\?\?\?\)",
    ):
        to_spec(compose(["+layer@model.layers.extra=linear"]))
