"""Example options and input shapes for every registered layer type, so the tests
that parametrize over the ``layer`` registry can build each one.

A new layer type is covered the day it is registered: its required options need an
example value here (``test_every_required_layer_option_has_an_example`` says which
one is missing), and at least one of :data:`SAMPLE_SHAPES` must fit it.
"""

from __future__ import annotations

from typing import Any

from annfactory import layers
from annfactory.params import REQUIRED

#: Input shapes of one sample: vectors, [channels, length] and [channels, height,
#: width] samples.
SAMPLE_SHAPES: list[tuple[int, ...]] = [
    (1,),
    (4,),
    (9,),
    (3, 4),
    (2, 9),
    (2, 6, 7),
    (3, 8, 8),
]

#: A value for each required option of the built-in layer types, by option name.
REQUIRED_EXAMPLES: dict[str, Any] = {
    "out_features": 5,
    "out_channels": 4,
    "kernel_size": 3,
    "output_size": 2,
}


def example_options(name: str, **given: Any) -> dict[str, Any]:
    """The layer type's options: its defaults, an example for each required one,
    and ``given``."""
    options = {
        option: REQUIRED_EXAMPLES[option]
        if param.default is REQUIRED
        else param.default
        for option, param in layers.get(name).params.items()
        if option not in given
    }
    return {**options, **given}


def shapes_taken(name: str, options: dict[str, Any]) -> list[tuple[int, ...]]:
    """The shapes of :data:`SAMPLE_SHAPES` that the type's shape rule accepts."""
    rule = layers.get(name).shape
    assert rule is not None
    taken = []
    for shape in SAMPLE_SHAPES:
        try:
            rule(shape, options)
        except ValueError:
            continue
        taken.append(shape)
    return taken


def first_shape(name: str) -> tuple[int, ...]:
    """The first of :data:`SAMPLE_SHAPES` that the layer type takes with its example
    options."""
    return shapes_taken(name, example_options(name))[0]
