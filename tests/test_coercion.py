"""One coercion for every registry: an entry as it is, or a function or class whose
signature gives the parameters (``annfactory.registry.EntryCoercion``), and one way to
take a docstring's first line (``first_doc_line``).

Parametrized over the three registries that coerce, so each says the same things in
the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from annfactory import (
    Activation,
    InitScheme,
    LayerType,
    Param,
    RegistrationError,
    Registry,
    activations,
    inits,
    layers,
)
from annfactory.registry import EntryCoercion, first_doc_line


class _Scale(nn.Module):
    """Multiply by a learnt factor.

    More text that listings leave out.
    """

    def __init__(self, in_features: int, factor: float = 2.0) -> None:
        super().__init__()
        self.factor = factor


class _Undocumented(nn.Module):
    def __init__(self, in_features: int, k: int = 3) -> None:
        super().__init__()


def _halves(tensor: torch.Tensor, *, generator: Any = None, p: float = 0.5) -> None:
    """Fill with p.

    Second line.
    """
    tensor.fill_(p)


def _undocumented(tensor: torch.Tensor, *, generator: Any = None, k: int = 3) -> None:
    tensor.fill_(k)


@dataclass(frozen=True)
class Case:
    registry: Registry[Any]
    kind: str
    entry: Any  # an entry of the registry's own type
    entry_words: str
    source: Any  # a documented function or class the registry accepts
    undocumented: Any
    source_params: tuple[str, ...]  # the parameters the source's signature gives
    source_words: str
    refused: Any  # something of neither kind


CASES = [
    Case(
        layers,
        "layer",
        LayerType(build=_Scale),
        "a LayerType",
        _Scale,
        _Undocumented,
        ("factor",),
        "an nn.Module class",
        lambda in_features: None,
    ),
    Case(
        activations,
        "activation",
        Activation(build=nn.Tanh),
        "an Activation",
        nn.ELU,
        _Undocumented,
        ("alpha", "inplace"),
        "an nn.Module class",
        lambda x: x,
    ),
    Case(
        inits,
        "init",
        InitScheme(apply=_halves),
        "an InitScheme",
        _halves,
        _undocumented,
        ("p",),
        "a function",
        3,
    ),
]
IDS = [case.kind for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_an_entry_is_registered_as_it_is(case: Case) -> None:
    assert case.registry.register("probe", case.entry) is case.entry
    assert case.registry.get("probe") is case.entry


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_options_with_an_entry_are_refused(case: Case) -> None:
    with pytest.raises(RegistrationError) as info:
        case.registry.register("probe", case.entry, doc="more")
    assert str(info.value) == f"{case.kind} 'probe': options given with " + (
        case.entry_words
    )
    assert "probe" not in case.registry


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_something_else_is_refused_saying_what_is_accepted(case: Case) -> None:
    with pytest.raises(RegistrationError) as info:
        case.registry.register("probe", case.refused)
    assert str(info.value) == (
        f"{case.kind} 'probe': expected {case.source_words} or {case.entry_words}"
    )
    assert "probe" not in case.registry


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_source_s_signature_and_docstring_make_the_entry(case: Case) -> None:
    entry = case.registry.register("probe", case.source)
    assert isinstance(entry, type(case.entry))
    assert tuple(entry.params) == case.source_params
    assert entry.doc == first_doc_line(case.source)
    assert entry.doc
    assert "\n" not in entry.doc
    assert case.registry.register("bare", case.undocumented).doc == ""


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params_and_doc_given_to_register_win(case: Case) -> None:
    params = {"width": Param(int, 4, "a width")}
    entry = case.registry.register("probe", case.source, params=params, doc="Mine.")
    assert dict(entry.params) == params
    assert entry.doc == "Mine."


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_an_unknown_option_is_a_registration_error(case: Case) -> None:
    with pytest.raises(RegistrationError) as info:
        case.registry.register("probe", case.source, colour="red")
    assert str(info.value).startswith(f"{case.kind} 'probe': ")
    assert str(info.value).endswith("unexpected keyword argument 'colour'")
    assert "probe" not in case.registry


def test_entry_coercion_on_a_registry_of_its_own() -> None:
    @dataclass(frozen=True)
    class Metric:
        compute: Callable[..., float]
        params: dict[str, Param]
        doc: str
        higher_is_better: bool = True

    metrics: Registry[Metric] = Registry(
        "metric",
        coerce=EntryCoercion(
            kind="metric",
            entry_type=Metric,
            entry_words="a Metric",
            source_words="a function",
            accepts=callable,
            params_of=lambda obj, name: {"k": Param(int, 1)},
            make=Metric,
        ),
    )

    @metrics.register("top_k", higher_is_better=False)
    def top_k(k: int = 1) -> float:
        """Share of rows whose label is among the k best.

        Details.
        """
        return 0.0

    entry = metrics.get("top_k")
    assert entry.compute is top_k
    assert entry.params == {"k": Param(int, 1)}
    assert entry.doc == "Share of rows whose label is among the k best."
    assert entry.higher_is_better is False
    with pytest.raises(RegistrationError, match=r"^metric 'x': expected a function "):
        metrics.register("x", 1)


def _documented() -> None:
    """

    Summary after blank lines.
    Second line.
    """


class _Plain:
    pass


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_documented, "Summary after blank lines."),
        (_Scale, "Multiply by a learnt factor."),
        (_Plain, ""),  # a class's docstring is not inherited from object
        (lambda: None, ""),
        (None, ""),
    ],
)
def test_first_doc_line(obj: object, expected: str) -> None:
    assert first_doc_line(obj) == expected
