"""The generic ``Registry`` and user registration through the three real registries."""

from __future__ import annotations

import inspect
import re
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import annfactory
from annfactory import (
    ConfigError,
    RegistrationError,
    Registry,
    UnknownNameError,
    activations,
    inits,
    layers,
)


def _run(layer: dict[str, Any], **top: Any) -> annfactory.RunSpec:
    """A one-layer network (3 -> 4 linear unless ``layer`` says otherwise)."""
    fields = {"type": "linear", "out_features": 4, **layer}
    model = {"type": "sequential", "in_features": 3, "layers": {"l1": fields}}
    return annfactory.parse_run({"model": model, **top})


def _valid_names(message: str, kind: str) -> list[str]:
    """The list after ``Valid <kind>s:`` in an error message."""
    found = re.search(rf"Valid {kind}s: (.*)\.$", message, re.MULTILINE)
    assert found is not None, message
    return found.group(1).split(", ")


@pytest.fixture
def fruits() -> Registry[str]:
    registry: Registry[str] = Registry("fruit")
    registry.register("banana", "yellow")
    registry.register("apple", "red")
    registry.register("cherry", "dark red")
    return registry


# ------------------------------------------------------------------------------------
# Registering, looking up, removing
# ------------------------------------------------------------------------------------


def test_register_as_decorator_returns_the_object_unchanged() -> None:
    registry: Registry[Any] = Registry("thing")

    @registry.register("double")
    def double(x: int) -> int:
        return 2 * x

    class Box:
        pass

    decorated = registry.register("box")(Box)  # what @registry.register("box") does

    assert double(21) == 42
    assert double.__name__ == "double"
    assert registry.get("double") is double
    assert decorated is Box
    assert registry.get("box") is Box


def test_the_decorator_returns_the_object_not_the_coerced_entry() -> None:
    # With a coerce function the registry stores something else than what was
    # decorated; the decorated name must still be the original class.
    registry: Registry[tuple[str, Any]] = Registry(
        "thing", coerce=lambda obj, *, name: (name, obj)
    )

    @registry.register("box")
    class Box:
        size = 3

    assert inspect.isclass(Box)
    assert Box.__qualname__.endswith("Box")
    assert Box().size == 3
    assert registry.get("box") == ("box", Box)


def test_direct_register_returns_the_entry(fruits: Registry[str]) -> None:
    assert fruits.register("kiwi", "green") == "green"
    assert fruits.get("kiwi") == "green"


def test_names_are_sorted_and_iteration_follows_them(fruits: Registry[str]) -> None:
    assert fruits.names() == ["apple", "banana", "cherry"]
    assert list(fruits) == ["apple", "banana", "cherry"]
    assert fruits.items() == [
        ("apple", "red"),
        ("banana", "yellow"),
        ("cherry", "dark red"),
    ]
    assert len(fruits) == 3
    assert "apple" in fruits
    assert "durian" not in fruits
    assert 3 not in fruits


def test_names_in_order_follow_registration_and_survive_a_restore(
    fruits: Registry[str],
) -> None:
    assert fruits.names_in_order() == ["banana", "apple", "cherry"]
    state = fruits.snapshot()
    fruits.unregister("banana")
    fruits.register("banana", "green")
    assert fruits.names_in_order() == ["apple", "cherry", "banana"]
    fruits.restore(state)
    assert fruits.names_in_order() == ["banana", "apple", "cherry"]


def test_unregister_removes_and_returns_the_entry(fruits: Registry[str]) -> None:
    assert fruits.unregister("banana") == "yellow"
    assert "banana" not in fruits
    assert len(fruits) == 2
    assert fruits.names() == ["apple", "cherry"]
    # The name is free again.
    fruits.register("banana", "green")
    assert fruits.get("banana") == "green"


def test_unregister_of_an_unknown_name_is_an_unknown_name_error(
    fruits: Registry[str],
) -> None:
    with pytest.raises(UnknownNameError, match="unknown fruit 'bananna'"):
        fruits.unregister("bananna")
    assert len(fruits) == 3


def test_a_coerce_function_turns_what_is_registered_into_an_entry() -> None:
    seen: list[tuple[Any, str, dict[str, Any]]] = []

    def coerce(obj: Any, *, name: str, **options: Any) -> str:
        seen.append((obj, name, options))
        return f"{name}={obj}"

    registry: Registry[str] = Registry("pair", coerce=coerce)
    assert registry.register("one", 1, colour="blue") == "one=1"
    assert registry.get("one") == "one=1"
    assert seen == [(1, "one", {"colour": "blue"})]


# ------------------------------------------------------------------------------------
# Registration errors
# ------------------------------------------------------------------------------------


def test_a_taken_name_says_where_the_first_function_came_from() -> None:
    registry: Registry[Any] = Registry("thing")

    def first() -> None:
        pass

    def second() -> None:
        pass

    registry.register("job", first)
    origin = f"{first.__module__}.{first.__qualname__}"
    with pytest.raises(RegistrationError, match=re.escape(origin)) as caught:
        registry.register("job", second)
    message = str(caught.value)
    assert "thing 'job' is already registered" in message
    assert f"line {first.__code__.co_firstlineno}" in message
    assert "second" not in message
    assert registry.get("job") is first


def test_a_taken_name_says_which_module_registered_a_plain_object(
    fruits: Registry[str],
) -> None:
    with pytest.raises(
        RegistrationError, match=re.escape(f"registered in module {__name__}")
    ):
        fruits.register("apple", "green")
    assert fruits.get("apple") == "red"


@pytest.mark.parametrize(
    ("registry", "name", "module"),
    [
        (inits, "normal", "annfactory.inits"),
        (activations, "relu", "annfactory.activations"),
        (layers, "linear", "annfactory.layers"),
    ],
)
def test_a_built_in_name_cannot_be_registered_again(
    registry: Registry[Any], name: str, module: str
) -> None:
    before = registry.get(name)

    def replacement(tensor: Any, *, generator: Any) -> None:
        pass

    with pytest.raises(
        RegistrationError,
        match=rf"{registry.kind} '{name}' is already registered .*{re.escape(module)}",
    ):
        registry.register(name, replacement)
    assert registry.get(name) is before


@pytest.mark.parametrize(
    "name",
    ["", "1st", "with space", "dash-name", "dotted.name", "café", "名前", 3, None],
)
def test_a_name_that_is_not_an_ascii_identifier_is_refused(name: Any) -> None:
    registry: Registry[Any] = Registry("thing")
    with pytest.raises(RegistrationError, match="must be an ASCII identifier"):
        registry.register(name, object())
    assert len(registry) == 0


def test_identifier_like_names_are_accepted() -> None:
    registry: Registry[Any] = Registry("thing")
    for name in ("a", "_private", "snake_case_2", "CamelCase"):
        registry.register(name, name)
    assert registry.names() == sorted(["a", "_private", "snake_case_2", "CamelCase"])


# ------------------------------------------------------------------------------------
# Unknown names
# ------------------------------------------------------------------------------------


def test_an_unknown_name_is_a_lookup_error_and_a_value_error(
    fruits: Registry[str],
) -> None:
    with pytest.raises(UnknownNameError) as caught:
        fruits.get("aple")
    error = caught.value
    assert isinstance(error, LookupError)
    assert isinstance(error, ValueError)
    assert isinstance(error, ConfigError)
    assert isinstance(error, annfactory.AnnFactoryError)
    assert error.kind == "fruit"
    assert error.value == "aple"
    assert error.valid == ["apple", "banana", "cherry"]


def test_an_unknown_name_message_names_kind_value_closest_and_valid_names(
    fruits: Registry[str],
) -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^unknown fruit 'cherri'\. Did you mean 'cherry'\?\n"
        r"  Valid fruits: apple, banana, cherry\.$",
    ):
        fruits.get("cherri")


def test_the_config_path_starts_the_message(fruits: Registry[str]) -> None:
    with pytest.raises(UnknownNameError, match=r"^basket\.fruit: unknown fruit"):
        fruits.get("bananna", key="basket.fruit")


def test_no_suggestion_when_nothing_is_close(fruits: Registry[str]) -> None:
    with pytest.raises(UnknownNameError) as caught:
        fruits.get("zzzzzz")
    assert "Did you mean" not in str(caught.value)
    assert "Valid fruits: apple, banana, cherry." in str(caught.value)


def test_an_empty_registry_says_that_nothing_exists() -> None:
    registry: Registry[Any] = Registry("widget")
    with pytest.raises(UnknownNameError, match="No widget exists"):
        registry.get("gadget")


def test_a_name_that_is_not_a_string_is_unknown(fruits: Registry[str]) -> None:
    with pytest.raises(UnknownNameError, match="unknown fruit 42"):
        fruits.get(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("registry", "bad", "closest"),
    [
        (inits, "xavier_norml", "xavier_normal"),
        (inits, "Kaiming-Normal", "kaiming_normal"),
        (activations, "sigmod", "sigmoid"),
        (activations, "leakyrelu", "leaky_relu"),
        (layers, "lineer", "linear"),
        (layers, "batchnorm", "batch_norm"),
    ],
)
def test_real_registries_suggest_the_closest_name(
    registry: Registry[Any], bad: str, closest: str
) -> None:
    key = "model.layers.l1.something"
    with pytest.raises(UnknownNameError) as caught:
        registry.get(bad, key=key)
    message = str(caught.value)
    assert message.startswith(f"{key}: unknown {registry.kind} {bad!r}.")
    assert f"Did you mean {closest!r}?" in message
    valid = _valid_names(message, registry.kind)
    assert valid == sorted(valid)
    assert set(valid) == set(registry)


def test_an_unknown_init_in_a_config_names_its_path_and_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.weight_init\.name: unknown init 'xavier_norml'\. "
        r"Did you mean 'xavier_normal'\?",
    ):
        _run({"weight_init": {"name": "xavier_norml"}})


# ------------------------------------------------------------------------------------
# Snapshot and restore
# ------------------------------------------------------------------------------------


def test_restore_returns_to_the_snapshot(fruits: Registry[str]) -> None:
    state = fruits.snapshot()
    fruits.register("kiwi", "green")
    fruits.unregister("apple")
    assert fruits.names() == ["banana", "cherry", "kiwi"]
    fruits.restore(state)
    assert fruits.names() == ["apple", "banana", "cherry"]
    assert fruits.get("apple") == "red"
    # The origin of a restored entry comes back with it.
    with pytest.raises(RegistrationError, match=f"registered in module {__name__}"):
        fruits.register("apple", "green")


def test_a_snapshot_is_not_changed_by_later_registrations(
    fruits: Registry[str],
) -> None:
    state = fruits.snapshot()
    fruits.register("kiwi", "green")
    fruits.restore(state)
    fruits.register("lime", "green")
    fruits.restore(state)
    assert fruits.names() == ["apple", "banana", "cherry"]


def test_real_registries_restore_after_a_user_entry() -> None:
    state = inits.snapshot()
    names = inits.names()

    @inits.register("temporary")
    def temporary(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
        tensor.zero_()

    assert "temporary" in inits
    inits.restore(state)
    assert "temporary" not in inits
    assert inits.names() == names


# ------------------------------------------------------------------------------------
# User entries in the real registries, used from plain-data configs
# ------------------------------------------------------------------------------------


def test_a_user_init_function_is_usable_from_a_config() -> None:
    calls: list[tuple[tuple[int, ...], bool, float]] = []

    @annfactory.inits.register("scaled")
    def scaled(
        tensor: torch.Tensor, *, generator: torch.Generator, scale: float = 1.0
    ) -> None:
        """Fill with ``scale``."""
        calls.append(
            (tuple(tensor.shape), isinstance(generator, torch.Generator), scale)
        )
        tensor.fill_(scale)

    assert scaled.__name__ == "scaled"
    scheme = inits.get("scaled")
    assert scheme.apply is scaled
    assert list(scheme.params) == ["scale"]
    assert scheme.params["scale"].default == 1.0
    assert scheme.doc == "Fill with ``scale``."

    spec = _run({"weight_init": {"name": "scaled", "scale": 2.0}})
    assert spec.network.layers[0].parameters[0].init.params == {"scale": 2.0}
    network = annfactory.build_network(spec)
    assert calls == [((4, 3), True, 2.0)]
    torch.testing.assert_close(network.l1.weight, torch.full((4, 3), 2.0))

    # Its default applies when the config gives only the name.
    spec = _run({"weight_init": "scaled"})
    torch.testing.assert_close(
        annfactory.build_network(spec).l1.weight, torch.ones(4, 3)
    )


def test_a_user_init_function_has_its_parameters_validated() -> None:
    @inits.register("scaled")
    def scaled(
        tensor: torch.Tensor, *, generator: torch.Generator, scale: float = 1.0
    ) -> None:
        tensor.fill_(scale)

    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.weight_init\.scal: unknown parameter 'scal' "
        r"for init 'scaled'\. Did you mean 'scale'\?",
    ):
        _run({"weight_init": {"name": "scaled", "scal": 2.0}})
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.weight_init\.scale: 'big' is not a number",
    ):
        _run({"weight_init": {"name": "scaled", "scale": "big"}})


def test_a_user_init_can_declare_that_it_needs_a_matrix() -> None:
    def eye(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
        torch.nn.init.eye_(tensor)

    inits.register("eye", eye, min_dim=2)
    network = annfactory.build_network(_run({"out_features": 3, "weight_init": "eye"}))
    torch.testing.assert_close(network.l1.weight, torch.eye(3))
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.bias_init: init 'eye' needs a tensor of at least "
        r"2 dimensions; l1\.bias has shape \[4\]",
    ):
        _run({"bias_init": "eye"})


def test_an_init_parameter_without_a_plain_default_is_refused() -> None:
    def bad(
        tensor: torch.Tensor, *, generator: torch.Generator, shape: Any = ()
    ) -> None:
        pass

    with pytest.raises(RegistrationError, match="parameter 'shape' needs a default"):
        inits.register("bad", bad)
    assert "bad" not in inits


def test_an_init_that_is_not_callable_is_refused() -> None:
    with pytest.raises(RegistrationError, match="expected a function or an InitScheme"):
        inits.register("number", 3)
    assert "number" not in inits


def test_a_user_activation_class_is_usable_from_a_config() -> None:
    @annfactory.activations.register("scaled_tanh")
    class ScaledTanh(nn.Module):
        """tanh(beta x)."""

        def __init__(self, beta: float = 1.0) -> None:
            super().__init__()
            self.beta = beta

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.beta * x)

    assert ScaledTanh(2.0).beta == 2.0
    entry = activations.get("scaled_tanh")
    assert entry.build is ScaledTanh
    assert entry.params["beta"].default == 1.0

    spec = _run({"activation": {"name": "scaled_tanh", "beta": 3.0}})
    assert spec.network.layers[0].activation.params == {"beta": 3.0}
    network = annfactory.build_network(spec)
    assert isinstance(network.l1_act, ScaledTanh)
    assert network.l1_act.beta == 3.0
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.tanh(3.0 * (x @ network.l1.weight.T + network.l1.bias))
    torch.testing.assert_close(network(x), expected)

    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.activation\.bta: unknown parameter 'bta' for "
        r"activation 'scaled_tanh'\. Did you mean 'beta'\?",
    ):
        _run({"activation": {"name": "scaled_tanh", "bta": 3.0}})
    with pytest.raises(
        ConfigError, match=r"^model\.layers\.l1\.activation\.beta: True is not a number"
    ):
        _run({"activation": {"name": "scaled_tanh", "beta": True}})


def test_a_user_activation_can_name_its_gain() -> None:
    @activations.register("soft_tanh", nonlinearity="tanh")
    class SoftTanh(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x)

    spec = _run({"activation": "soft_tanh", "weight_init": "xavier_normal"})
    gain = spec.network.layers[0].parameters[0].init.params["gain"]
    assert gain == pytest.approx(torch.nn.init.calculate_gain("tanh"))


def test_a_user_activation_with_a_learnable_parameter_is_built_on_the_device() -> None:
    # Swish with a learnable beta: its parameter must be real memory, like the
    # layers' parameters, so the network can run.
    @activations.register("swish")
    class Swish(nn.Module):
        def __init__(self, beta: float = 1.0) -> None:
            super().__init__()
            self.beta = nn.Parameter(torch.tensor(beta))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(self.beta * x)

    network = annfactory.build_network(
        _run({"activation": {"name": "swish", "beta": 2.0}})
    )
    beta = network.l1_act.beta
    assert beta.device.type == "cpu"
    assert beta.item() == 2.0
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    hidden = x @ network.l1.weight.T + network.l1.bias
    torch.testing.assert_close(network(x), hidden * torch.sigmoid(2.0 * hidden))


def test_an_activation_that_is_not_a_class_is_refused() -> None:
    with pytest.raises(RegistrationError, match=r"expected an nn\.Module class"):
        activations.register("lambda_act", lambda x: x)
    assert "lambda_act" not in activations


class _Affine(nn.Module):
    """y = x W^T + b, registered by tests as a layer type."""

    default_inits: ClassVar[dict[str, str]] = {"weight": "zeros", "bias": "zeros"}

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


def test_a_user_layer_class_is_usable_from_a_config() -> None:
    assert layers.register("affine", _Affine) is not _Affine  # a LayerType entry
    entry = layers.get("affine")
    assert list(entry.params) == ["out_features", "bias"]
    assert entry.params["out_features"].required
    assert entry.params["bias"].default is True

    spec = _run({"type": "affine", "out_features": 7})
    layer = spec.network.layers[0]
    assert (layer.in_features, layer.out_features) == (3, 7)
    described = [
        (p.name, p.shape, p.init.name, p.from_default) for p in layer.parameters
    ]
    assert described == [
        ("weight", (7, 3), "zeros", True),
        ("bias", (7,), "zeros", True),
    ]
    network = annfactory.build_network(spec)
    assert isinstance(network.l1, _Affine)
    assert network(torch.ones(5, 3)).shape == (5, 7)
    torch.testing.assert_close(network.l1.weight, torch.zeros(7, 3))
    torch.testing.assert_close(network.l1.bias, torch.zeros(7))


def test_a_user_layer_takes_named_inits_and_options() -> None:
    layers.register("affine", _Affine)
    spec = _run(
        {
            "type": "affine",
            "out_features": 2,
            "weight_init": {"name": "constant", "val": 0.5},
            "bias": False,
        }
    )
    network = annfactory.build_network(spec)
    assert [name for name, _ in network.named_parameters()] == ["l1.weight"]
    torch.testing.assert_close(network.l1.weight, torch.full((2, 3), 0.5))
    torch.testing.assert_close(network(torch.ones(1, 3)), torch.full((1, 2), 1.5))


def test_a_user_layer_without_a_default_init_for_a_parameter() -> None:
    class WeightOnlyDefault(_Affine):
        default_inits: ClassVar[dict[str, str]] = {"weight": "ones"}

    layers.register("half_default", WeightOnlyDefault)
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.bias_init: layer type 'half_default' declares no "
        r"default init for 'bias'\.\n  Name an init for it",
    ):
        _run({"type": "half_default"})
    # Naming an init for it is the fix.
    spec = _run({"type": "half_default", "bias_init": {"name": "constant", "val": 3}})
    network = annfactory.build_network(spec)
    torch.testing.assert_close(network.l1.weight, torch.ones(4, 3))
    torch.testing.assert_close(network.l1.bias, torch.full((4,), 3.0))


def test_a_user_layer_validates_its_options() -> None:
    layers.register("affine", _Affine)
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.out_features: layer type 'affine' needs "
        r"'out_features'",
    ):
        annfactory.parse_run(
            {
                "model": {
                    "in_features": 3,
                    "layers": {"l1": {"type": "affine"}},
                }
            }
        )
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.out_feature: unknown layer key 'out_feature' for "
        r"layer type 'affine'\. Did you mean 'out_features'\?",
    ):
        _run({"type": "affine", "out_feature": 3})


def test_a_layer_class_must_take_in_features_first() -> None:
    class NoInput(nn.Module):
        def __init__(self, out_features: int) -> None:
            super().__init__()

    with pytest.raises(RegistrationError, match="must take in_features first"):
        layers.register("no_input", NoInput)
    assert "no_input" not in layers
