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
