"""Plugins: packages that declare an ``annfactory.plugins`` entry point are loaded on
the first registry miss, once per process, and a broken one gives annfactory's error.

Each test writes a plugin module and its ``*.dist-info`` folder into ``tmp_path`` and
puts it on ``sys.path``, which is all ``importlib.metadata`` needs to find it.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

import annfactory
from annfactory import (
    AnnFactoryError,
    RegistrationError,
    Registry,
    UnknownNameError,
    activations,
    inits,
    layers,
    plugins,
)

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "afx_demo_plugin"

_HEADER = '''\
"""A demo annfactory plugin: one init, one activation, one layer type."""

from pathlib import Path

from torch import nn

import annfactory

with Path(__file__).with_name("imports.log").open("a") as log:
    log.write("imported\\n")
'''

_ENTRIES = '''\
@annfactory.inits.register("plugin_scaled")
def plugin_scaled(tensor, *, generator, scale: float = 0.25):
    """Fill with ``scale``."""
    tensor.fill_(scale)


@annfactory.activations.register("plugin_clip", nonlinearity="linear")
class PluginClip(nn.Module):
    """Clamp to [-limit, limit]."""

    def __init__(self, limit: float = 0.5):
        super().__init__()
        self.limit = limit

    def forward(self, x):
        return x.clamp(-self.limit, self.limit)


@annfactory.layers.register("plugin_scale")
class PluginScale(nn.Module):
    """Multiply by ``factor``."""

    def __init__(self, in_features: int, factor: float = 3.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor
'''

#: Registers its entries on import (entry point value ``afx_demo_plugin``).
MODULE_PLUGIN = _HEADER + "\n\n" + _ENTRIES
#: Registers its entries when ``register`` is called (``afx_demo_plugin:register``).
CALLABLE_PLUGIN = (
    _HEADER
    + "\n\ndef register():\n"
    + '    with Path(__file__).with_name("calls.log").open("a") as log:\n'
    + '        log.write("called\\n")\n\n'
    + textwrap.indent(_ENTRIES, "    ")
)

Install = Callable[..., Path]


def _sequential(**layer_nodes: dict[str, Any]) -> dict[str, Any]:
    """A run config with the given layers after 3 inputs."""
    model = {"type": "sequential", "in_features": 3, "layers": layer_nodes}
    return {"model": model}


def _one_linear(**fields: Any) -> dict[str, Any]:
    return _sequential(l1={"type": "linear", "out_features": 4, **fields})


def _log_lines(folder: Path, name: str) -> int:
    log = folder / name
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(autouse=True)
def fresh_plugin_state() -> Iterator[None]:
    """Each test loads plugins as a new process would; conftest restores registries."""
    plugins.reset()
    yield
    plugins.reset()
    for name in [name for name in sys.modules if name.startswith("afx_")]:
        del sys.modules[name]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """``install(entry_points, **modules)``: an installed plugin distribution.

    ``entry_points`` maps entry-point names to values; ``modules`` maps module names
    to their source. Returns the folder that is put on ``sys.path``.
    """

    def install_plugin(entry_points: Mapping[str, str], **modules: str) -> Path:
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(source)
        dist_info = tmp_path / "afx_demo_plugin-0.1.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: afx-demo-plugin\nVersion: 0.1\n"
        )
        lines = [f"{name} = {value}" for name, value in entry_points.items()]
        (dist_info / "entry_points.txt").write_text(
            "[annfactory.plugins]\n" + "\n".join(lines) + "\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        return tmp_path

    return install_plugin


# ------------------------------------------------------------------------------------
# Loading on the first miss, once
# ------------------------------------------------------------------------------------


def test_plugin_init_builds_a_network_and_loads_only_on_a_miss(
    install: Install,
) -> None:
    install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    # Membership tests and listings stay cheap: they load nothing.
    assert "plugin_scaled" not in inits
    assert "plugin_scaled" not in inits.names()
    annfactory.parse_run(_one_linear(weight_init="xavier_normal"))
    assert PLUGIN not in sys.modules

    spec = annfactory.parse_run(_one_linear(weight_init="plugin_scaled"))
    network = annfactory.build_network(spec)

    assert PLUGIN in sys.modules
    assert spec.network.layers[0].weight_init == annfactory.InitSpec(
        "plugin_scaled", {"scale": 0.25}
    )
    weight = network.get_parameter("l1.weight")
    assert torch.equal(weight, torch.full((4, 3), 0.25))
    assert inits.origin("plugin_scaled").startswith(f"{PLUGIN}.plugin_scaled")


def test_plugins_are_scanned_and_imported_once_across_misses(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    scans: list[str | None] = []
    real_entry_points = importlib.metadata.entry_points

    def counting_entry_points(**params: Any) -> Any:
        scans.append(params.get("group"))
        return real_entry_points(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting_entry_points)

    assert inits.get("plugin_scaled").params["scale"].default == 0.25
    for registry in (inits, activations, layers):
        with pytest.raises(UnknownNameError):
            registry.get("nowhere")
    assert layers.get("plugin_scale").params["factor"].default == 3.0

    assert scans == ["annfactory.plugins"]
    assert _log_lines(folder, "imports.log") == 1
    assert plugins.load_plugins() == ["afx_demo"]
    assert scans == ["annfactory.plugins"]


def test_plugin_layer_type_and_activation_with_parameters(install: Install) -> None:
    install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    spec = annfactory.parse_run(
        _sequential(
            l1={"type": "linear", "out_features": 2, "weight_init": "ones"},
            l2={
                "type": "plugin_scale",
                "factor": 2.0,
                "activation": {"name": "plugin_clip", "limit": 5.0},
            },
        )
    )
    network = annfactory.build_network(spec)
    x = torch.tensor([[1.0, 0.5, 0.0], [2.0, 2.0, 2.0]])
    linear = x.sum(dim=1, keepdim=True).expand(2, 2) + network.get_parameter("l1.bias")
    assert torch.allclose(network(x), (2.0 * linear).clamp(-5.0, 5.0))
    assert spec.network.layers[1].options == {"factor": 2.0}
    assert type(network.get_submodule("l2_act")).__name__ == "PluginClip"


def test_compose_and_build_model_with_plugin_shorthands(install: Install) -> None:
    install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    cfg = annfactory.compose(
        [
            "model.layers.linear1.weight_init=plugin_scaled",
            "model.layers.linear1.activation=plugin_clip",
        ]
    )
    model = annfactory.build_model(cfg)

    assert torch.equal(model.get_parameter("linear1.weight"), torch.full((3, 3), 0.25))
    activation = model.get_submodule("linear1_act")
    assert type(activation).__name__ == "PluginClip"
    assert torch.equal(
        activation(torch.tensor([-2.0, 0.1, 9.0])), torch.tensor([-0.5, 0.1, 0.5])
    )


def test_callable_entry_point_is_called_once(install: Install) -> None:
    folder = install(
        {"afx_demo": f"{PLUGIN}:register"}, afx_demo_plugin=CALLABLE_PLUGIN
    )
    spec = annfactory.parse_run(
        _one_linear(weight_init="plugin_scaled", activation="plugin_clip")
    )
    with pytest.raises(UnknownNameError):
        layers.get("nowhere")
    network = annfactory.build_network(spec)

    assert torch.equal(network.get_parameter("l1.weight"), torch.full((4, 3), 0.25))
    assert "plugin_scale" in layers
    assert _log_lines(folder, "imports.log") == 1
    assert _log_lines(folder, "calls.log") == 1


def test_load_plugins_returns_the_loaded_entry_points(install: Install) -> None:
    install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    assert plugins.load_plugins() == ["afx_demo"]
    assert "plugin_scaled" in inits
    assert "plugin_clip" in activations
    assert plugins.load_plugins() == ["afx_demo"]


def test_restore_and_reset_let_a_plugin_load_again(install: Install) -> None:
    folder = install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    saved = inits.snapshot()
    inits.get("plugin_scaled")
    inits.restore(saved)
    plugins.reset()
    del sys.modules[PLUGIN]
    assert "plugin_scaled" not in inits

    assert inits.get("plugin_scaled").params["scale"].default == 0.25
    assert _log_lines(folder, "imports.log") == 2


# ------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "reason", "cause"),
    [
        pytest.param(
            PLUGIN,
            "x = 1 / 0\n",
            "ZeroDivisionError: division by zero",
            ZeroDivisionError,
            id="raises-on-import",
        ),
        pytest.param(
            "afx_absent_plugin",
            "",
            "ModuleNotFoundError: No module named 'afx_absent_plugin'",
            ModuleNotFoundError,
            id="module-missing",
        ),
        pytest.param(
            f"{PLUGIN}:register",
            "def register():\n    raise ValueError('no good')\n",
            "ValueError: no good",
            ValueError,
            id="callable-raises",
        ),
        pytest.param(
            f"{PLUGIN}:VERSION",
            "VERSION = 3\n",
            "TypeError: VERSION is not callable (type int)",
            TypeError,
            id="not-callable",
        ),
        pytest.param(
            PLUGIN,
            "import annfactory\nannfactory.activations.register('relu', object())\n",
            "RegistrationError: activation 'relu' is already registered (from "
            "registered in module annfactory.activations); choose another name or "
            "unregister the first one",
            RegistrationError,
            id="name-taken",
        ),
        pytest.param(
            PLUGIN,
            "import annfactory\nannfactory.inits.get('nowhere')\n",
            "UnknownNameError: unknown init 'nowhere'.",
            UnknownNameError,
            id="misses-while-loading",
        ),
    ],
)
def test_broken_plugin_gives_an_error_naming_it_at_look_up(
    install: Install, value: str, source: str, reason: str, cause: type[Exception]
) -> None:
    install({"afx_demo": value}, afx_demo_plugin=source)

    with pytest.raises(UnknownNameError) as raised:
        annfactory.parse_run(_one_linear(weight_init="plugin_scaled"))

    # The name is unknown (line 1), and the plugin that may have held it failed
    # (line 2); the plugin's error is the cause, with the original behind it.
    error = raised.value
    failure = error.__cause__
    assert type(failure) is RegistrationError
    assert isinstance(failure, AnnFactoryError)
    assert isinstance(failure.__cause__, cause)
    assert str(failure).splitlines() == [
        f"plugin 'afx_demo' ({value}) failed to load: {reason}",
        "  annfactory loads its plugins when a registry lacks a name; fix or "
        "uninstall afx-demo-plugin 0.1.",
    ]
    assert str(error).splitlines() == [
        "model.layers.l1.weight_init: unknown init 'plugin_scaled'.",
        f"  plugin 'afx_demo' ({value}) failed to load: {reason.rstrip('.')}; "
        "annfactory loads its plugins when a registry lacks a name; fix or "
        "uninstall afx-demo-plugin 0.1.",
        f"  Valid inits: {', '.join(inits.names())}.",
    ]
    # Reported again on the next miss; registered names are unaffected.
    with pytest.raises(UnknownNameError, match=r"(?m)^  plugin 'afx_demo' "):
        layers.get("plugin_scale")
    annfactory.parse_run(_one_linear(weight_init="normal", activation="relu"))


def test_a_typo_with_a_broken_plugin_names_the_typo_then_the_plugin(
    install: Install,
) -> None:
    install({"afx_broken": "afx_broken_plugin"}, afx_broken_plugin="1 / 0\n")
    plugin_line = (
        "  plugin 'afx_broken' (afx_broken_plugin) failed to load: "
        "ZeroDivisionError: division by zero; annfactory loads its plugins when a "
        "registry lacks a name; fix or uninstall afx-demo-plugin 0.1."
    )
    # A group option (the pre-check) and a layer's shorthand (the spec).
    with pytest.raises(UnknownNameError) as raised:
        annfactory.compose(["activation=clipp"])
    assert str(raised.value).splitlines()[:2] == [
        "activation: unknown activation 'clipp'.",
        plugin_line,
    ]
    with pytest.raises(UnknownNameError) as raised:
        annfactory.parse_run(_one_linear(activation="rleu"))
    assert str(raised.value).splitlines() == [
        "model.layers.l1.activation: unknown activation 'rleu'. Did you mean 'relu'?",
        plugin_line,
        f"  Valid activations: {', '.join(activations.names())}.",
    ]


def test_a_broken_plugin_does_not_hide_a_working_one(install: Install) -> None:
    install(
        {"afx_broken": "afx_broken_plugin", "afx_demo": PLUGIN},
        afx_broken_plugin="raise RuntimeError('broken on purpose')\n",
        afx_demo_plugin=MODULE_PLUGIN,
    )
    spec = annfactory.parse_run(_one_linear(weight_init="plugin_scaled"))
    assert spec.network.layers[0].weight_init.name == "plugin_scaled"

    with pytest.raises(
        UnknownNameError,
        match=r"unknown init 'plugin_scalde'\. Did you mean 'plugin_scaled'\?\n"
        r"  plugin 'afx_broken' \(afx_broken_plugin\) failed to load: "
        r"RuntimeError: broken on purpose;",
    ):
        inits.get("plugin_scalde")


def test_several_broken_plugins_report_the_first_and_count_the_rest(
    install: Install,
) -> None:
    install(
        {"afx_one": "afx_one_plugin", "afx_two": "afx_two_plugin"},
        afx_one_plugin="raise RuntimeError('one')\n",
        afx_two_plugin="raise RuntimeError('two')\n",
    )
    with pytest.raises(RegistrationError) as raised:
        plugins.load_plugins()
    assert str(raised.value).splitlines()[0] == (
        "plugin 'afx_one' (afx_one_plugin) failed to load: RuntimeError: one "
        "(1 more plugin failed too)"
    )


def test_unknown_name_with_plugins_present_is_the_usual_error(
    install: Install,
) -> None:
    install({"afx_demo": PLUGIN}, afx_demo_plugin=MODULE_PLUGIN)
    with pytest.raises(UnknownNameError) as raised:
        annfactory.parse_run(_one_linear(weight_init="plugin_scalde"))
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "model.layers.l1.weight_init: unknown init 'plugin_scalde'. "
        "Did you mean 'plugin_scaled'?"
    )
    assert lines[1] == f"  Valid inits: {', '.join(inits.names())}."
    assert "plugin_scaled" in inits.names()

    with pytest.raises(
        UnknownNameError,
        match=r"(?m)^model\.layers\.l1\.activation: unknown activation 'rleu'\. "
        r"Did you mean 'relu'\?$",
    ):
        annfactory.parse_run(_one_linear(activation="rleu"))


# ------------------------------------------------------------------------------------
# The generic hook of Registry
# ------------------------------------------------------------------------------------


def test_on_miss_runs_only_on_a_miss_and_then_looks_again() -> None:
    calls: list[str] = []
    fruits: Registry[str] = Registry("fruit", on_miss=None)
    fruits.register("apple", "red")

    def load_more() -> None:
        calls.append("miss")
        if "kiwi" not in fruits:
            fruits.register("kiwi", "green")

    fruits.on_miss = load_more
    assert fruits.get("apple") == "red"
    assert "kiwi" not in fruits
    assert fruits.names() == ["apple"]
    assert calls == []

    assert fruits.get("kiwi") == "green"
    assert calls == ["miss"]
    with pytest.raises(UnknownNameError, match="Did you mean 'apple'"):
        fruits.get("appel")
    assert calls == ["miss", "miss"]


def test_a_failing_hook_is_the_second_line_unless_it_registered_the_name() -> None:
    fruits: Registry[str] = Registry("fruit")
    fruits.register("mango", "yellow")

    def half_broken() -> None:
        if "kiwi" not in fruits:
            fruits.register("kiwi", "green")
        raise RegistrationError("a plugin failed\n  fix it")

    fruits.on_miss = half_broken
    assert fruits.get("kiwi") == "green"
    with pytest.raises(UnknownNameError) as raised:
        fruits.get("mangoo")
    assert str(raised.value).splitlines() == [
        "unknown fruit 'mangoo'. Did you mean 'mango'?",
        "  a plugin failed; fix it.",
        "  Valid fruits: kiwi, mango.",
    ]
    assert isinstance(raised.value.__cause__, RegistrationError)


def test_a_hook_that_fails_with_a_bug_propagates() -> None:
    fruits: Registry[str] = Registry("fruit")

    def buggy() -> None:
        raise KeyError("bug in the hook")

    fruits.on_miss = buggy
    with pytest.raises(KeyError, match="bug in the hook"):
        fruits.get("mango")


def test_on_miss_none_gives_the_plain_error() -> None:
    fruits: Registry[str] = Registry("fruit", on_miss=None)
    fruits.register("apple", "red")
    with pytest.raises(UnknownNameError, match="unknown fruit 'appel'"):
        fruits.get("appel")


# ------------------------------------------------------------------------------------
# Start-up stays fast
# ------------------------------------------------------------------------------------


def test_import_and_compose_do_not_load_plugins(install: Install) -> None:
    canary_plugin = '''\
from pathlib import Path

import annfactory

Path(__file__).with_name("canary.txt").write_text("loaded")


@annfactory.inits.register("canary_init")
def canary_init(tensor, *, generator):
    """Fill with 1."""
    tensor.fill_(1.0)
'''
    folder = install(
        {"afx_canary": "afx_canary_plugin"}, afx_canary_plugin=canary_plugin
    )
    code = (
        "import sys, pathlib, annfactory\n"
        "canary = pathlib.Path(sys.argv[1])\n"
        "spec = annfactory.to_spec(annfactory.compose(['model=demo']))\n"
        "assert not canary.exists(), 'loaded by import, compose or to_spec'\n"
        "from annfactory import plugins\n"
        "assert plugins._state.loaded is None, 'entry points scanned'\n"
        "annfactory.inits.get('canary_init')\n"
        "assert canary.exists(), 'not loaded on a miss'\n"
        "print(spec.network.num_params)\n"
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), str(REPO / "src")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder / "canary.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 26
