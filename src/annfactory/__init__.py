"""annfactory: config-driven factory for fully connected PyTorch networks.

``import annfactory`` and :func:`compose` do not import torch; :func:`build_model`
does, on first use.
"""

from annfactory._version import __version__
from annfactory.activations import Activation, activations
from annfactory.api import build_model, build_network, materialize
from annfactory.config import compose, to_spec
from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    DeviceError,
    MemoryLimitError,
    RegistrationError,
    UnknownNameError,
)
from annfactory.inits import InitScheme, calculate_gain, inits
from annfactory.layers import LayerType, layers
from annfactory.models import ModelType, model_types
from annfactory.params import Param
from annfactory.plugins import load_plugins
from annfactory.predictor import Predictor, load_predictor
from annfactory.registry import Registry
from annfactory.runs import load_run, load_spec
from annfactory.spec import (
    ActivationSpec,
    InitSpec,
    LayerSpec,
    NetworkSpec,
    ParameterSpec,
    RunSpec,
    parse_run,
)

__all__ = [
    "Activation",
    "ActivationSpec",
    "AnnFactoryError",
    "ConfigError",
    "DeviceError",
    "InitScheme",
    "InitSpec",
    "LayerSpec",
    "LayerType",
    "MemoryLimitError",
    "ModelType",
    "NetworkSpec",
    "Param",
    "ParameterSpec",
    "Predictor",
    "RegistrationError",
    "Registry",
    "RunSpec",
    "UnknownNameError",
    "__version__",
    "activations",
    "build_model",
    "build_network",
    "calculate_gain",
    "compose",
    "inits",
    "layers",
    "load_plugins",
    "load_predictor",
    "load_run",
    "load_spec",
    "materialize",
    "model_types",
    "parse_run",
    "to_spec",
]
