"""The ``model type`` registry: the built-in expanders and a user's model type."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

import annfactory
from annfactory import ConfigError, RegistrationError, UnknownNameError
from annfactory.models import (
    Expansion,
    GeneratedLayers,
    LayerEntry,
    ModelType,
    mlp_layer_names,
    model_types,
)
from annfactory.params import REQUIRED, Param, validate_params
from annfactory.spec import MODEL_TYPES

_TOWER = {
    "in_features": Param(int, REQUIRED, "input size", low=1),
    "floors": Param(int, 2, "number of linear layers", low=1),
    "activation": Param(str, "tanh", "activation of every layer"),
}


def _tower(model: Mapping[str, Any], key: str) -> Expansion:
    """Equal linear layers, each as wide as the input: a test model type."""
    given = {name: value for name, value in model.items() if name != "type"}
    sizes = validate_params(given, _TOWER, key, "model 'tower'")
    width = sizes["in_features"]
    layers = [
        LayerEntry(
            f"floor{index}",
            {
                "type": "linear",
                "out_features": width,
                "activation": sizes["activation"],
            },
            {"out_features": f"{key}.in_features", "activation": f"{key}.activation"},
        )
        for index in range(1, sizes["floors"] + 1)
    ]
    return Expansion((width,), layers)


def test_the_built_in_model_types_are_registered() -> None:
    assert model_types.names() == ["mlp", "sequential"]
    assert set(MODEL_TYPES) == {"mlp", "sequential"}
    mlp = model_types.get("mlp")
    assert list(mlp.params) == ["in_features", "out_features", "depth", "width", "bias"]
    assert mlp.params["depth"].default == 2
    assert mlp.doc.startswith("``depth`` hidden linear layers")
    assert list(model_types.get("sequential").params) == ["in_features"]


def test_an_unknown_model_type_names_the_closest() -> None:
    model = {"type": "mpl", "in_features": 3, "layers": {}}
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.type: unknown model type 'mpl'\. Did you mean 'mlp'\?\n"
        r"  Valid model types: mlp, sequential\.$",
    ):
        annfactory.parse_run({"model": model})


def test_a_registered_model_type_is_usable_from_a_config() -> None:
    model_types.register("tower", params=_TOWER)(_tower)
    assert model_types.get("tower").doc == (
        "Equal linear layers, each as wide as the input: a test model type."
    )
    spec = annfactory.parse_run({"model": {"type": "tower", "in_features": 4}})
    network = spec.network
    assert [layer.name for layer in network.layers] == ["floor1", "floor2"]
    assert [(layer.in_features, layer.out_features) for layer in network.layers] == [
        (4, 4),
        (4, 4),
    ]
    # The top-level groups reach the layers a model type generates.
    spec = annfactory.parse_run(
        {"model": {"type": "tower", "in_features": 4}, "activation": "relu"}
    )
    assert [layer.activation.name for layer in spec.network.layers] == [
        "relu",
        "tanh",
    ]
    built = annfactory.build_network(spec)
    assert built(torch.ones(2, 4)).shape == (2, 4)


def test_a_model_type_reports_errors_with_the_paths_it_gives() -> None:
    model_types.register("tower", ModelType(params=_TOWER, expand=_tower))
    with pytest.raises(
        ConfigError, match=r"^model\.floors: 0 is out of range\.\n  Allowed: an integer"
    ):
        annfactory.parse_run(
            {"model": {"type": "tower", "in_features": 4, "floors": 0}}
        )
    # A layer field's path is the one the expander gave for it.
    model = {"type": "tower", "in_features": 4, "activation": "tanhh"}
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.activation: unknown activation 'tanhh'\. Did you mean 'tanh'\?",
    ):
        annfactory.parse_run({"model": model})


def test_a_model_type_is_a_function_or_a_model_type() -> None:
    with pytest.raises(RegistrationError, match="expected an expander function"):
        model_types.register("broken", 3)
    with pytest.raises(RegistrationError, match="options given with a ModelType"):
        model_types.register(
            "tower", ModelType(params=_TOWER, expand=_tower), params=_TOWER
        )
    assert "broken" not in model_types
    assert "tower" not in model_types


def test_the_mlp_entry_says_which_layers_it_makes_and_what_adds_one() -> None:
    mlp, sequential = model_types.get("mlp"), model_types.get("sequential")
    assert sequential.generated is None
    assert sequential.group_keys == {}
    generated = mlp.generated
    assert generated is not None
    assert generated.names({"depth": 2}) == ["hidden1", "hidden2", "out"]
    assert generated.names({"depth": 0}) == ["out"]
    for depth in (None, -1, True, "2", "???"):
        assert generated.names({"depth": depth}) is None
    assert (generated.made_from, generated.count_key) == (("depth", "width"), "depth")
    assert generated.settings_for("hidden7") == {"depth": 7}
    for name in ("hidden0", "hidden07", "out", "fc1", "hidden"):
        assert generated.settings_for(name) is None
    assert mlp.group_keys == {"init": "weight_init", "activation": "hidden_activation"}


def _floors(model: Mapping[str, Any]) -> list[str] | None:
    floors = model.get("floors")
    if not isinstance(floors, int) or floors < 1:
        return None
    return [f"floor{index}" for index in range(1, floors + 1)]


def test_the_override_check_asks_a_model_type_for_the_layers_it_makes(
    tmp_path: Path,
) -> None:
    """The messages about a generated layer come from the model type's entry, not
    from knowledge of the mlp in the checks."""
    model_types.register(
        "tower",
        params=_TOWER,
        generated=GeneratedLayers(
            names=_floors,
            made_from=("floors",),
            count_key="floors",
            settings_for=lambda name: (
                {"floors": int(name[5:])} if name[5:].isdigit() else None
            ),
        ),
    )(_tower)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tower.yaml").write_text(
        "type: tower\nin_features: 4\nfloors: 2\nlayers: {}\n"
    )
    searched = f"hydra.searchpath=[file://{tmp_path}]"
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.floor5: unknown layer 'floor5' \(tower, floors=2\)\. "
        r"Did you mean 'floor2'\?\n  Valid layers: floor1, floor2; with floor5: "
        r"model\.floors=5 "
        r"\+model\.layers\.floor5\.activation=relu$",
    ):
        annfactory.compose(
            ["model=tower", "model.layers.floor5.activation=relu", searched]
        )
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.floor2: tower layer 'floor2' has no settings of its "
        r"own yet \(its layers are made from floors\)\.\n"
        r"  \+ adds one: \+model\.layers\.floor2\.activation=relu$",
    ):
        annfactory.compose(
            ["model=tower", "model.layers.floor2.activation=relu", searched]
        )


def test_the_registry_snapshot_fixture_removes_user_model_types() -> None:
    assert "tower" not in model_types


def test_mlp_layer_names_and_entries() -> None:
    assert mlp_layer_names(0) == ["out"]
    assert mlp_layer_names(2) == ["hidden1", "hidden2", "out"]
    model = {"type": "mlp", "in_features": 3, "out_features": 2, "depth": 1}
    expansion = model_types.get("mlp").expand(model, "model")
    assert expansion.input_shape == (3,)
    hidden, out = expansion.layers
    assert (hidden.name, hidden.fields["out_features"]) == ("hidden1", 32)
    assert hidden.key("out_features") == "model.width"
    assert hidden.key("activation") == "model.hidden_activation"
    assert out.key("out_features") == "model.out_features"
    assert out.key("activation") == "model.output_activation"


def test_a_layer_entry_knows_the_paths_of_its_fields() -> None:
    entry = LayerEntry("l1")
    entry.update({"type": "linear", "out_features": 3}, "model.layers.l1")
    assert entry.path == "model.layers.l1"
    assert entry.key("out_features") == "model.layers.l1.out_features"
    assert entry.key("bias_init") == "model.layers.l1.bias_init"
    # A generated layer without a type path is reported under model.layers.<name>.
    assert LayerEntry("hidden1").key("activation") == "model.layers.hidden1.activation"
