"""Example options and input shapes for every registered layer type, so the tests
that parametrize over the ``layer`` registry can build each one.

A new layer type is covered the day it is registered: its required options need an
example value here (``test_every_required_layer_option_has_an_example`` says which
one is missing), and at least one of :data:`SAMPLE_SHAPES` must fit it.
"""

from __future__ import annotations

from typing import Any

from annfactory import layers
from annfactory.layer_shapes import IDS, SEQUENCE, with_layout

#: Input shapes of one sample: vectors, [channels, length] and [channels, height,
#: width] samples, sequences [time, features] and ids [time].
SAMPLE_SHAPES: list[tuple[int, ...]] = [
    (1,),
    (4,),
    (9,),
    (3, 4),
    (2, 9),
    (2, 6, 7),
    (3, 8, 8),
    with_layout((6, 4), SEQUENCE),
    with_layout((3, 8), SEQUENCE),
    with_layout((7,), IDS),
]

#: A value for each required option of the built-in layer types, by option name.
REQUIRED_EXAMPLES: dict[str, Any] = {
    "out_features": 5,
    "out_channels": 4,
    "kernel_size": 3,
    "output_size": 2,
    "num_embeddings": 11,
    "embedding_dim": 4,
    "hidden_size": 3,
    "nhead": 2,
    # encode_table: a table of 4 columns (one number each): two numeric, one of them
    # with a missing indicator, a one-hot and an embedded categorical column.
    "columns": {
        "features": [
            {
                "name": "a",
                "type": "numeric",
                "median": 0.5,
                "mean": 0.25,
                "scale": 2.0,
                "indicator": True,
            },
            {
                "name": "b",
                "type": "numeric",
                "median": -1.0,
                "mean": -1.5,
                "scale": 0.5,
                "indicator": False,
            },
            {
                "name": "c",
                "type": "categorical",
                "encoding": "onehot",
                "vocabulary": ["x", "y"],
                "missing_level": True,
            },
            {
                "name": "d",
                "type": "categorical",
                "encoding": "embedding",
                "vocabulary": [f"v{i}" for i in range(20)],
                "missing_level": False,
            },
        ],
        "ignored": {},
    },
}


#: The layers of a nested layer type (a residual block) in the examples: one that
#: keeps any shape.
NESTED_EXAMPLE: dict[str, Any] = {"inner": {"type": "layer_norm"}}


def example_options(name: str, **given: Any) -> dict[str, Any]:
    """The layer type's options: its defaults, an example for each required one,
    and ``given``."""
    options = {
        option: REQUIRED_EXAMPLES[option] if param.required else param.default
        for option, param in layers.get(name).params.items()
        if option not in given
    }
    return {**options, **given}


def example_node(name: str) -> dict[str, Any]:
    """A layer node of the type with its example options (and, for a nested type,
    :data:`NESTED_EXAMPLE` as its layers)."""
    node = {"type": name, **example_options(name)}
    if layers.get(name).nested:
        node["layers"] = NESTED_EXAMPLE
    return node


def rule_options(
    name: str, input_shape: tuple[int, ...], **given: Any
) -> dict[str, Any]:
    """What the type's shape rule and build take besides the input shape: its
    options, and for a nested type the shape its layers give (the input's, as with
    :data:`NESTED_EXAMPLE`)."""
    options = example_options(name, **given)
    if layers.get(name).nested:
        options["body_shape"] = input_shape
    return options


def takes(name: str, shape: tuple[int, ...]) -> bool:
    """Whether the type's shape rule accepts ``shape`` with its example options."""
    rule = layers.get(name).shape
    assert rule is not None
    try:
        rule(shape, rule_options(name, shape))
    except ValueError:
        return False
    return True


def shapes_taken(name: str, options: dict[str, Any]) -> list[tuple[int, ...]]:
    """The shapes of :data:`SAMPLE_SHAPES` that the type's shape rule accepts."""
    rule = layers.get(name).shape
    assert rule is not None
    taken = []
    for shape in SAMPLE_SHAPES:
        try:
            rule(shape, rule_options(name, shape, **options))
        except ValueError:
            continue
        taken.append(shape)
    return taken


def first_shape(name: str) -> tuple[int, ...]:
    """The first of :data:`SAMPLE_SHAPES` that the layer type takes with its example
    options."""
    return shapes_taken(name, example_options(name))[0]
