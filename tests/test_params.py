"""``annfactory.params.require_mapping``: the one check that a config node is a
mapping, used by the spec and the tasks alike."""

from __future__ import annotations

from typing import Any

import pytest

from annfactory import ConfigError
from annfactory.params import require_mapping


def test_a_mapping_is_returned_as_it_is() -> None:
    node = {"out_features": 4}
    assert require_mapping(node, "model.layers.fc1") is node


@pytest.mark.parametrize(
    ("node", "key", "words", "expected"),
    [
        (
            [1],
            "task.params",
            {},
            "task.params: [1] is not a mapping.\n  Give a mapping.",
        ),
        (
            "relu",
            "model.layers.fc1",
            {"what": "a layer"},
            "model.layers.fc1: 'relu' is not a layer.\n  Give a mapping.",
        ),
        (
            3,
            "",
            {"what": "the config"},
            "<root>: 3 is not the config.\n  Give a mapping.",
        ),
        (
            None,
            "task",
            {"fix": "Give key: value pairs."},
            "task: None is not a mapping.\n  Give key: value pairs.",
        ),
    ],
)
def test_anything_else_is_a_config_error_naming_the_key(
    node: Any, key: str, words: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        require_mapping(node, key, **words)
    assert str(info.value) == expected
    assert info.value.key == (key or "<root>")


# ------------------------------------------------------------------------------------
# What null means (issue 19): each parameter's message says it of itself
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "null_means", "meaning"),
    [
        ("patience", "never stop", "stop after this many epochs"),
        ("log_every", "about 20 lines a run", "epochs between progress lines"),
    ],
)
def test_a_task_option_says_what_its_own_null_means(
    option: str, null_means: str, meaning: str
) -> None:
    from annfactory.tasks import parse_task_options

    with pytest.raises(ConfigError) as info:
        parse_task_options("train", {option: 0})
    message = str(info.value)
    assert message.startswith(f"task.{option}: 0 is out of range.\n")
    assert f"or null ({null_means}) ({meaning}" in message
    assert "activation" not in message


def test_only_parameters_derived_from_an_activation_say_so() -> None:
    """Every task option, data option and init parameter that may be null says
    what null means, in its own words."""
    from annfactory.data import datasets
    from annfactory.inits import inits
    from annfactory.tasks import tasks

    schemas = [
        *(task.params for _, task in tasks.items()),
        *(datasets.get(name).params for name in datasets.names()),
        *(inits.get(name).params for name in inits.names()),
    ]
    nullable = [param for schema in schemas for param in schema.values() if param.auto]
    assert len(nullable) >= 8
    for param in nullable:
        allowed = param.allowed()
        assert "or null (" in allowed, (param, allowed)
        if "activation" in allowed:
            assert "activation" in param.doc, param
