"""A corpus of bad inputs: each fails fast, without a traceback, with a short message.

Every case is a command line of ``scripts/run.py``: overrides, or a model file of a
user's own config directory (``tests/bad_inputs/model/<case>.yaml`` with
``--config-dir tests/bad_inputs``). Each must exit non-zero, print no traceback, and
print a message of at most three lines that names the config path, the bad value and
the fix (the closest valid name where there is one), and leave no outputs behind.
(How fast they fail is measured by ``scripts/bench.py``, not here.)

Every case runs in this process through the same checks the command line makes
(``check_overrides``, ``compose``, ``to_spec``, ``build_network``), which is fast; one
case of each family of errors (:data:`COMMAND_LINE_CASES`) also runs as a subprocess
(marked slow), which adds what the command line does around the message (Hydra's
framing, no traceback, the exit status, no outputs left behind). The cases here
complement those of ``test_cli.py::BAD_INPUTS``, which are not repeated.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import annfactory
from annfactory import ConfigError
from annfactory.config import check_overrides
from annfactory.errors import MemoryLimitError

RunCli = Callable[..., Any]

TESTS = Path(__file__).resolve().parent
BAD_INPUTS = TESTS / "bad_inputs"
RUN_PY = TESTS.parent / "scripts" / "run.py"

#: Lines Hydra prints around a message that escapes a job.
FRAMING = (
    "Error executing job with overrides:",
    "Set the environment variable HYDRA_FULL_ERROR=1",
)
#: The prefix of a message about the overrides, printed before Hydra starts.
OVERRIDES_PREFIX = "Error in the overrides: "

#: Outputs that a failed run must not leave.
OUTPUTS = (
    "metrics.json", "weights.safetensors", "spec.yaml", "summary.txt",
    "model.onnx", "model.pt2",
)  # fmt: skip

#: The huge mlp: 8 hidden layers of 200,000 units, 280 billion parameters (1.1 TB in
#: float32). On the meta device it builds in about two seconds.
HUGE_MLP = ("model=mlp", "model.width=200000", "model.depth=8")
_WIDTH = 200_000
HUGE_PARAMS = (8 * _WIDTH + _WIDTH) + 7 * (_WIDTH * _WIDTH + _WIDTH) + (_WIDTH * 2 + 2)
HUGE_BYTES = 4 * HUGE_PARAMS

#: The default mlp (8 -> 32 relu -> 32 relu -> 2) with a batch of 2 billion rows: the
#: input batch and the activations take 1.1 TB, the parameters 5,640 bytes.
HUGE_BATCH = ("model=mlp", "batch_size=2000000000")
HUGE_BATCH_BYTES = 2_000_000_000 * 4 * (8 + 2 * 32 + 2 * 32 + 2)

#: Cases that a machine with this much memory would run, not refuse.
NEEDS_BYTES = {
    "network-too-large": HUGE_BYTES,
    "batch-too-large": HUGE_BATCH_BYTES,
    "layer-width-too-large": 640 * 10**12,
}


@dataclass(frozen=True)
class Bad:
    """One bad input and what its message must name.

    Attributes:
        args: The command line (after ``scripts/run.py``).
        key: The config path that the message starts with.
        value: The bad value, as the message shows it.
        fix: A fragment of the fix or of the closest valid name.
    """

    args: tuple[str, ...]
    key: str
    value: str
    fix: str

    @property
    def config_dirs(self) -> list[Path]:
        return [BAD_INPUTS] if "--config-dir" in self.args else []

    @property
    def overrides(self) -> list[str]:
        args = list(self.args)
        if "--config-dir" in args:
            index = args.index("--config-dir")
            del args[index : index + 2]
        return args


def case(id: str, *args: str, key: str, value: str, fix: str) -> Any:
    return pytest.param(Bad(args, key, value, fix), id=id)


def user_file(name: str, *more: str, key: str, value: str, fix: str) -> Any:
    """A model file of the user's config directory, ``tests/bad_inputs``, with more
    overrides after it."""
    args = ("--config-dir", str(BAD_INPUTS), f"model={name}", *more)
    return pytest.param(Bad(args, key, value, fix), id=f"file-{name}")


LAYER = "model.layers.linear1"
CYRILLIC_I = "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}"
CYRILLIC_IE = "\N{CYRILLIC SMALL LETTER IE}"

OVERRIDE_CASES = [
    # Unknown or misspelled names, at every level.
    case("unknown-activation", "activation=sigmod",
         key="activation", value="'sigmod'", fix="Did you mean 'sigmoid'?"),
    case("unknown-activation-parameter",
         "activation@model.layers.linear1.activation=elu",
         "+model.layers.linear1.activation.alpah=1",
         key=f"{LAYER}.activation.alpah", value="'alpah'",
         fix="Did you mean 'alpha'?"),
    case("unknown-layer-key", f"+{LAYER}.widht=3",
         key=f"{LAYER}.widht", value="'widht'", fix="Valid layer keys: "),
    case("misspelled-mlp-key", "model=mlp", "model.widht=3",
         key="model.widht", value="'widht'", fix="Did you mean 'width'?"),
    case("misspelled-top-level-key", "sede=1",
         key="sede", value="'sede'", fix="Did you mean 'seed'?"),
    case("unknown-top-level-key", "+colour=red",
         key="colour", value="'colour'", fix="Valid top-level keys: "),
    case("mlp-unknown-layer", "model=mlp", "+model.layers.hiden2.weight_init=zeros",
         key="model.layers.hiden2", value="'hiden2'", fix="Did you mean 'hidden2'?"),
    case("kaiming-mode-misspelled", "init=kaiming_normal", "init.mode=fan_inn",
         key="init.mode", value="'fan_inn'", fix="Did you mean 'fan_in'?"),
    # Wrong types; zero, negative and fractional sizes.
    case("out-features-negative", f"{LAYER}.out_features=-3",
         key=f"{LAYER}.out_features", value="-3 is out of range", fix=">= 1"),
    case("out-features-word", f"{LAYER}.out_features=abc",
         key=f"{LAYER}.out_features", value="'abc' is not an integer",
         fix="an integer >= 1"),
    case("in-features-zero", "model.in_features=0",
         key="model.in_features", value="0 is out of range", fix=">= 1"),
    case("mlp-width-fraction", "model=mlp", "model.width=2.5",
         key="model.width", value="2.5 is not an integer", fix="an integer >= 1"),
    case("bias-not-boolean", f"{LAYER}.bias=maybe",
         key=f"{LAYER}.bias", value="'maybe' is not a boolean", fix="a boolean"),
    # NaN, infinite and impossible init parameters; inits that cannot apply.
    case("init-std-nan", "init=normal", "init.std=nan",
         key="init.std", value="nan is not finite", fix="a number >= 0"),
    case("init-mean-infinite", "init=normal", "init.mean=-inf",
         key="init.mean", value="-inf is not finite", fix="Allowed: a number"),
    case("init-std-negative", "init=normal", "init.std=-1",
         key="init.std", value="-1.0 is out of range", fix=">= 0"),
    case("trunc-normal-a-equals-b", "init=trunc_normal", "init.a=1", "init.b=1",
         key="init", value="a=1, b=1", fix="needs a < b"),
    case("orthogonal-on-bias", f"{LAYER}.bias_init=orthogonal",
         key=f"{LAYER}.bias_init", value="'orthogonal'",
         fix="Use zeros, constant, uniform, normal or default"),
    case("init-on-layer-without-weight",
         "+layer@model.layers.drop=dropout", "model.layers.drop.weight_init=ones",
         key="model.layers.drop.weight_init", value="'ones'",
         fix="model.layers.drop.weight_init=default"),
    # Activation and layer parameters out of range.
    case("softmax-dim-of-output", "model.layers.out.activation.dim=2",
         key="model.layers.out.activation.dim", value="2 is out of range",
         fix="<= 1"),
    case("dropout-p-above-one",
         "+layer@model.layers.drop=dropout", "model.layers.drop.p=1.5",
         key="model.layers.drop.p", value="1.5 is out of range", fix="<= 1"),
    # device, dtype, seed, batch_size.
    case("device-uppercase", "device=CPU",
         key="device", value="'CPU'", fix="Did you mean 'cpu'?"),
    case("device-index-not-a-number", "device=cuda:x",
         key="device", value="'cuda:x'", fix="cuda:N"),
    case("dtype-integer", "dtype=int32",
         key="dtype", value="'int32'", fix="Valid dtypes: bfloat16, float16"),
    case("seed-too-large", "seed=99999999999999999999",
         key="seed", value="99999999999999999999 is out of range",
         fix="<= 9223372036854775807"),
    case("seed-word", "seed=abc",
         key="seed", value="'abc' is not an integer", fix="an integer >= 0"),
    case("batch-size-boolean", "batch_size=true",
         key="batch_size", value="True is not an integer", fix="an integer >= 1"),
    # Hydra's and OmegaConf's errors, re-rendered.
    case("missing-value", f"{LAYER}.out_features=???",
         key=f"{LAYER}.out_features", value="???",
         fix=f"Set {LAYER}.out_features=<value>"),
    case("interpolation-to-nothing", f"{LAYER}.out_features=${{nope}}",
         key=f"{LAYER}.out_features", value="'${nope}'",
         fix="Interpolate an existing config path"),
    case("interpolation-to-missing-value",
         "+layer@model.layers.extra=linear",
         f"{LAYER}.out_features=${{model.layers.extra.out_features}}",
         key=f"{LAYER}.out_features", value="'${model.layers.extra.out_features}'",
         fix="missing (???)"),
    case("unparsable-override", f"{LAYER}.out_features=[1,2",
         key=f"{LAYER}.out_features", value="'[1,2'", fix="quote a value"),
    case("delete-unknown-key", "~model.nope",
         key="model.nope", value="'nope'", fix="Valid keys: in_features, layers"),
    case("add-existing-key", "+model.in_features=4",
         key="model.in_features", value="already has a value",
         fix="Write model.in_features=4"),
    case("unknown-launcher", "hydra/launcher=jobllib",
         key="hydra/launcher", value="'jobllib'", fix="Did you mean 'joblib'?"),
    case("override-without-key", "=3",
         key="=3", value="no key", fix="Write key=value"),
    case("nothing-after-at", "init@=xavier_normal",
         key="init@", value="'init@=xavier_normal'", fix="Write init=xavier_normal"),
    # Non-ASCII look-alike names.
    case("lookalike-activation", f"{LAYER}.activation=s{CYRILLIC_I}gmoid",
         key=f"{LAYER}.activation", value="U+0456",
         fix=f"Type it in ASCII: {LAYER}.activation=sigmoid"),
    case("lookalike-activation-quoted", f'{LAYER}.activation="s{CYRILLIC_I}gmoid"',
         key=f"{LAYER}.activation", value="non-ASCII character",
         fix="Did you mean 'sigmoid'?"),
    case("lookalike-model", f"model=d{CYRILLIC_IE}mo",
         key="model", value="U+0435", fix="Type it in ASCII: model=demo"),
    # Import paths and _target_ are never imported or called.
    case("dotted-layer-type", f"{LAYER}.type=os.system",
         key=f"{LAYER}.type", value="'os.system'", fix="never import paths"),
    case("dotted-init", f"{LAYER}.weight_init=subprocess.call",
         key=f"{LAYER}.weight_init", value="'subprocess.call'",
         fix="Valid inits: constant"),
    case("target-on-a-layer", f"+{LAYER}._target_=os.system",
         key=f"{LAYER}._target_", value="_target_ is never imported",
         fix=f"Use {LAYER}.type with one of: adaptive_avg_pool2d"),
    # A network too large for this machine, caught before allocation.
    case("network-too-large", *HUGE_MLP,
         key="model",
         value=f"{HUGE_BYTES / 1e9:,.1f} GB for the network's parameters",
         fix="use device=meta for a dry run"),
    # The input batch and the activations count too, and name batch_size.
    case("batch-too-large", *HUGE_BATCH,
         key="batch_size",
         value=f"{HUGE_BATCH_BYTES / 1e9:,.1f} GB for a batch of 2,000,000,000 rows",
         fix="Use a smaller batch_size (at most "),
    # A tensor larger than torch can describe, even on the meta device.
    case("tensor-beyond-int64-on-meta",
         "model=mlp", "model.width=10000000000", "model.depth=3", "device=meta",
         key="model.layers.hidden2", value="[10000000000, 10000000000]",
         fix="Make the layer smaller"),
]  # fmt: skip

FILE_CASES = [
    user_file("malformed_yaml", key="model", value="line 6, column 6",
              fix="Fix the file there"),
    user_file("duplicate_key", key="model", value="found duplicate key fc1",
              fix="Fix the file there"),
    user_file("no_out_features", key="model.layers.fc1.out_features",
              value="needs 'out_features'",
              fix="Set model.layers.fc1.out_features=<value>"),
    user_file("empty_layers", key="model.layers", value="no layers",
              fix="Add at least one layer"),
    user_file("layers_as_list", key="model.layers",
              value="is not a mapping of layer names", fix="Give a mapping"),
    user_file("unknown_layer_type", key="model.layers.fc1.type", value="'lineer'",
              fix="Did you mean 'linear'?"),
    user_file("unknown_model_type", key="model.type", value="'sequentail'",
              fix="Did you mean 'sequential'?"),
    user_file("unknown_init_parameter", key="model.layers.fc1.weight_init.sdt",
              value="'sdt'", fix="Did you mean 'std'?"),
    user_file("missing_default_option", key="model.layers.fc1", value="'lineer'",
              fix="Did you mean 'linear'?"),
    user_file("global_unknown_key", key="sede", value="'sede'",
              fix="Did you mean 'seed'?"),
    user_file("out_features_string", key="model.layers.fc1.out_features",
              value="'four' is not an integer", fix="an integer >= 1"),
    user_file("nan_init", key="model.layers.fc1.weight_init.std",
              value="nan is not finite", fix="a number >= 0"),
    user_file("infinite_bound", key="model.layers.fc1.weight_init.b",
              value="inf is not finite", fix="Allowed: a number"),
    user_file("trunc_normal_bounds", key="model.layers.fc1.weight_init",
              value="a=2, b=-2", fix="needs a < b"),
    user_file("fan_init_on_bias", key="model.layers.fc1.bias_init",
              value="'kaiming_uniform'", fix="Use zeros, constant"),
    user_file("softmax_dim", key="model.layers.out.activation.dim",
              value="2 is out of range", fix="<= 1"),
    user_file("dropout_p", key="model.layers.drop.p", value="1.5 is out of range",
              fix="<= 1"),
    user_file("missing_value", key="model.in_features", value="???",
              fix="Set model.in_features=<value>"),
    user_file("bad_interpolation", key="model.layers.fc1.out_features",
              value="'${model.hidden_size}'", fix="Interpolate an existing"),
    user_file("lookalike_activation", key="model.layers.fc1.activation",
              value="U+0456", fix="Did you mean 'sigmoid'?"),
    user_file("lookalike_type", key="model.layers.fc1.type", value="U+0456",
              fix="Did you mean 'linear'?"),
    user_file("lookalike_init", key="model.layers.fc1.weight_init", value="U+0430",
              fix="Did you mean 'xavier_normal'?"),
    user_file("lookalike_layer_name", key="model.layers.f\N{CYRILLIC SMALL LETTER ES}1",
              value="U+0441", fix="e.g. fc1."),
    user_file("target_in_layer", key="model.layers.fc1._target_",
              value="_target_ is never imported", fix="Use model.layers.fc1.type"),
    user_file("target_at_model", key="model._target_",
              value="_target_ is never imported", fix="Remove it"),
]  # fmt: skip

DATA = BAD_INPUTS / "data"
TRAIN = ("task=train", "model=mlp")


def train_case(id: str, *args: str, key: str, value: str, fix: str) -> Any:
    """A ``task=train`` command line; one epoch, so a case that trains is quick."""
    return case(id, *TRAIN, *args, "task.epochs=1", key=key, value=value, fix=fix)


def csv_case(id: str, file: str, *, key: str, value: str, fix: str) -> Any:
    """``data=csv`` with one of the files of ``tests/bad_inputs/data``."""
    args = ("data=csv", f"data.path={DATA / file}", "data.target=label")
    return train_case(id, *args, key=key, value=value, fix=fix)


def series_case(id: str, file: str, *args: str, key: str, value: str, fix: str) -> Any:
    """``data=series`` on one of the files of ``tests/bad_inputs/data``."""
    data = ("data=series", f"data.path={DATA / file}", "data.column=sales")
    return case(id, "task=train", "model=lstm", *data, *args, "task.epochs=1",
                key=key, value=value, fix=fix)  # fmt: skip


TRAIN_CASES = [
    csv_case("csv-missing-file", "missing.csv", key="data.path",
             value="missing.csv", fix="Give the path of a data file"),
    csv_case("csv-empty-file", "empty.csv", key="data.path", value="is empty",
             fix="needs a header row"),
    csv_case("csv-missing-target", "no_target.csv", key="data.target",
             value="no column 'label'", fix="Its columns: height, weight, outcome"),
    csv_case("csv-text-cell", "text_cell.csv", key="data.path",
             value="column 'weight' holds numbers, but 'abc' in row 7",
             fix="'data.types={weight: categorical}'"),
    csv_case("csv-one-class", "one_class.csv", key="data.target",
             value="one class only ('yes')", fix="at least two different values"),
    csv_case("csv-too-small-to-split", "tiny.csv", key="data.val_fraction",
             value="of 2 rows", fix="Raise data.val_fraction"),
    train_case("val-fraction-one", "data=digits", "data.val_fraction=1",
               key="data.val_fraction", value="1.0 is outside (0, 1)",
               fix="strictly between 0 and 1"),
    train_case("val-fraction-negative", "data=digits", "data.val_fraction=-0.2",
               key="data.val_fraction", value="-0.2 is outside (0, 1)",
               fix="strictly between 0 and 1"),
    case("zero-epochs", *TRAIN, "data=digits", "task.epochs=0", key="task.epochs",
         value="0 is out of range", fix="an integer >= 1"),
    train_case("zero-lr", "data=digits", "optimizer.lr=0", key="optimizer.lr",
               value="0.0 is out of range", fix="a number > 0"),
    train_case("negative-lr", "data=digits", "optimizer=sgd", "optimizer.lr=-0.5",
               key="optimizer.lr", value="-0.5 is out of range", fix="a number > 0"),
    train_case("unknown-data", "data=digitz", key="data", value="'digitz'",
               fix="Did you mean 'digits'?"),
    train_case("unknown-optimizer", "data=digits", "optimizer=adma", key="optimizer",
               value="'adma'", fix="Did you mean 'adam'?"),
    train_case("unknown-optimizer-key", "data=digits", "optimizer.lrr=0.1",
               key="optimizer.lrr", value="'lrr'", fix="Did you mean 'lr'?"),
    train_case("nesterov-without-momentum", "data=digits", "optimizer=sgd",
               "optimizer.nesterov=true", key="optimizer.nesterov",
               value="needs momentum > 0", fix="optimizer.momentum"),
    train_case("in-features-against-data", "data=digits", "model.in_features=3",
               key="model.in_features", value="takes 3 inputs, and data=digits has 64",
               fix="Set model.in_features=64"),
    train_case("out-features-against-data", "data=iris", "model.out_features=2",
               key="model.out_features", value="2 outputs", fix="out_features=3"),
    train_case("cross-entropy-after-softmax", "data=digits",
               "model.output_activation=softmax", "task.loss=cross_entropy",
               key="task.loss", value="second softmax", fix="Leave task.loss out"),
    train_case("mse-on-classes", "data=digits", "task.loss=mse", key="task.loss",
               value="regression loss", fix="Leave task.loss out"),
    train_case("train-on-meta", "data=digits", "device=meta", key="device",
               value="device=meta", fix="Use device=cpu"),
    train_case("train-without-data", key="data", value="none is chosen",
               fix="digits"),
    case("data-without-train", "model=mlp", "data=digits", key="data",
         value="task=train only", fix="python scripts/run.py task=train data=digits"),
    case("optimizer-without-train", "optimizer.lr=0.1", key="optimizer.lr",
         value="task=train only", fix="task=train optimizer.lr=0.1"),
]  # fmt: skip

#: Issue 19's training cases.
TRAIN19_CASES = [
    train_case("top-level-batch-size-with-train", "data=iris", "batch_size=7",
               key="batch_size", value="does not read the top-level batch_size (7)",
               fix="Use task.batch_size=7 instead"),
    case("one-row-steps-with-batch-norm", "task=train", "model=cnn", "data=digits",
         "task.batch_size=1", "task.epochs=1", key="task.batch_size",
         value="1 row per step: the network's batch norm needs 2 or more rows",
         fix="Use task.batch_size=2 or more"),
]  # fmt: skip

RUNS = BAD_INPUTS / "runs"

EXPORT_CASES = [
    case("export-on-meta", "task=export", "device=meta", key="device",
         value="device=meta allocates no values", fix="Use device=cpu"),
    case("export-missing-run", "task=export", "task.run=no/such/run", key="task.run",
         value="'no/such/run' does not exist", fix="Give the directory of a saved run"),
    case("export-run-is-a-file", "task=export", f"task.run={BAD_INPUTS / 'README.md'}",
         key="task.run", value="README.md' is a file, not a directory",
         fix="Give the directory of a saved run"),
    case("export-run-with-a-bad-spec", "task=export",
         f"task.run={RUNS / 'unknown_layer_type'}", key="task.run",
         value="does not load: model.layers.fc1.type: unknown layer type 'lineer'",
         fix="Did you mean 'linear'?"),
    case("export-opset-too-old", "task=export", "task.opset=11", key="task.opset",
         value="11 is out of range", fix="an integer >= 18"),
    case("export-unknown-option", "task=export", "task.rum=outputs/x", key="task.rum",
         value="'rum'", fix="Did you mean 'run'?"),
]  # fmt: skip

#: Issue 19: CSV files whose layout is not what data=csv expects, values that the
#: run's dtype cannot hold, a continuous target as classes, ~ in a path, and a
#: look-alike letter in a group option (still refused: it is a name, not data).
DATA19_CASES = [
    csv_case("csv-semicolon-separated", "semicolon.csv", key="data.delimiter",
             value="looks separated by ';'", fix="Set \"data.delimiter=';'\""),
    csv_case("csv-tab-separated", "tab_separated.csv", key="data.delimiter",
             value="looks separated by tab", fix="Set data.delimiter=tab"),
    csv_case("csv-comment-line", "comment_line.csv", key="data.path",
             value="row 1: '# measured on 2024-05-01' looks like a comment",
             fix="Delete the comment lines"),
    csv_case("csv-unterminated-quote", "unterminated_quote.csv", key="data.path",
             value="row 3: a quote (\") opens a cell that is never closed",
             fix="Close the quote or delete it"),
    csv_case("csv-trailing-comma", "trailing_comma.csv", key="data.path",
             value="the header row ends with a ','",
             fix="Delete the ',' at the end of every row"),
    csv_case("csv-value-too-large-for-float32", "huge_value.csv", key="data.path",
             value="column 'weight' holds 1e+300 in row 4: too large for float32",
             fix="Rescale the column"),
    train_case("csv-continuous-target-as-classes", "data=csv",
               f"data.path={DATA / 'continuous.csv'}", "data.target=label",
               "data.kind=classification", key="data.kind",
               value="has 105 distinct values in 120 rows",
               fix="Set data.kind=regression"),
    train_case("csv-tilde-path", "data=csv", "data.path=~/no/such.csv",
               "data.target=label", key="data.path",
               value=f"{Path.home()}/no/such.csv, what it would name, does not exist",
               fix="Give the absolute path of an existing file"),
    case("tilde-run-dir", "hydra.run.dir=~/annfactory-runs", key="hydra.run.dir",
         value="'~' is not expanded here",
         fix=f"Give the absolute path: hydra.run.dir={Path.home()}/annfactory-runs"),
    case("lookalike-activation-group", f"activation=r{CYRILLIC_IE}lu",
         key="activation", value="U+0435", fix="Type it in ASCII: activation=relu"),
]  # fmt: skip


#: A layer 10 trillion units wide: 640 TB, its width's fault, not the batch's.
WIDE_LAYER = (f"{LAYER}.out_features=9999999999999",)

# Issue 19, the command line's edge: the memory guard names a layer's width, and
# Hydra's own errors about one override come out in annfactory's words.
CLI19_CASES = [
    case("layer-width-too-large", *WIDE_LAYER, key=f"{LAYER}.out_features",
         value="9,999,999,999,999 makes the run need 640,000.0 GB",
         fix=f"Use a smaller {LAYER}.out_features, or device=meta"),
    case("hydra-key-misspelled", "hydra.job.chdr=true", key="hydra.job.chdr",
         value="'chdr'", fix="Did you mean 'chdir'?"),
    case("hydra-open-mapping-needs-plus", "hydra.job.env_set.MY_VAR=1",
         key="hydra.job.env_set.MY_VAR", value="'MY_VAR'",
         fix="+ adds it: +hydra.job.env_set.MY_VAR=1"),
    case("launcher-key-misspelled", "hydra/launcher=joblib", "hydra.launcher.n_jobz=2",
         key="hydra.launcher.n_jobz", value="'n_jobz'", fix="Did you mean 'n_jobs'?"),
    case("hydra-value-of-another-type", "hydra.job.chdir=[1]",
         key="hydra.job.chdir", value="'[1]' is not a valid bool",
         fix="Give a bool; --cfg hydra --package hydra.job"),
    case("add-existing-hydra-key", "+hydra.verbose=true", key="hydra.verbose",
         value="already has a value", fix="Write hydra.verbose=true"),
    case("delete-unknown-top-level-key", "~sede", key="sede", value="'sede'",
         fix="Did you mean 'seed'?"),
    case("delete-with-another-value", "~seed=3", key="seed",
         value="~seed=3 deletes it only where its value is 3; it is 0",
         fix="Write ~seed to delete it"),
    pytest.param(
        Bad(("--config-dir", str(BAD_INPUTS), "model=layer_key_left_out",
             "model.layers.fc1.bias_init=zeros"),
            key="model.layers.fc1.bias_init", value="has no 'bias_init' in its config",
            fix="+ adds it: +model.layers.fc1.bias_init=zeros"),
        id="file-layer_key_left_out",
    ),
    case("user-layer-key-misspelled", "--config-dir", str(BAD_INPUTS),
         "model=layer_key_left_out", "model.layers.fc1.bias_nit=zeros",
         key="model.layers.fc1.bias_nit", value="'bias_nit'",
         fix="Did you mean 'bias_init'?"),
]  # fmt: skip

# Issue 20, public APIs only: annfactory's launcher is gone, basic is the default.
ISSUE20_H1_CASES = [
    case("removed-annfactory-launcher", "hydra/launcher=annfactory",
         key="hydra/launcher", value="'annfactory'",
         fix="Valid launchers: basic, joblib, submitit_local, submitit_slurm"),
]  # fmt: skip

PENGUINS = Path(__file__).parent / "data" / "tables" / "penguins.csv"


def penguins_case(id: str, *args: str, key: str, value: str, fix: str) -> Any:
    """``data=csv`` on the Palmer penguins file, with one mistake."""
    return train_case(
        id, "data=csv", f"data.path={PENGUINS}", *args, key=key, value=value, fix=fix
    )


# Issue 21: a user's table, as it comes.
ISSUE21_CASES = [
    csv_case("csv-target-without-values", "empty_target.csv", key="data.target",
             value="column 'label' has no values", fix="holds values"),
    csv_case("csv-every-feature-empty", "empty_features.csv", key="data.features",
             value="every feature column of", fix="a feature column that holds"),
    penguins_case("table-unknown-type-column", "data.target=species",
                  "data.types={yeer: categorical}", key="data.types",
                  value="no column 'yeer'", fix="Did you mean 'year'?"),
    penguins_case("table-unknown-feature", "data.target=species",
                  "data.features=[island,bil_length_mm]", key="data.features",
                  value="no column 'bil_length_mm'",
                  fix="Did you mean 'bill_length_mm'?"),
    penguins_case("table-unknown-type", "data.target=species",
                  "data.types={year: categoric}", key="data.types.year",
                  value="'categoric'", fix="Did you mean 'categorical'?"),
    penguins_case("table-fractions-leave-no-row", "data.target=species",
                  "data.test_fraction=0.5", "data.val_fraction=0.5",
                  key="data.test_fraction", value="0.5 + data.val_fraction 0.5",
                  fix="keep their sum below 1"),
    case("data-option-without-a-data-set", *TRAIN, f"data.path={PENGUINS}",
         "data.target=species", "task.epochs=1", key="data.path",
         value="no data set is chosen", fix="Add data=csv (or data=parquet)"),
    train_case("parquet-not-parquet", "data=parquet",
               f"data.path={DATA / 'not_parquet.parquet'}", "data.target=label",
               key="data.path", value="is not a Parquet file",
               fix="Give a Parquet file"),
]  # fmt: skip

# Issue 21: task=predict and task=evaluate, on a trained run of a user's table.
SPECIES_RUN = TESTS / "fixtures" / "table_runs" / "penguins_species"
FORWARD_RUN = TESTS / "fixtures" / "runs" / "demo"
PREDICT = ("task=predict", f"task.run={SPECIES_RUN}")
ISSUE21_PREDICT_CASES = [
    case("predict-without-run", "task=predict", f"data.path={PENGUINS}",
         key="task.run", value="task=predict needs the trained run to predict with",
         fix="Add task.run=<the directory of a task=train run"),
    case("predict-missing-run", "task=predict", "task.run=no/such/run",
         f"data.path={PENGUINS}", key="task.run",
         value="'no/such/run' does not exist",
         fix="Give the directory of a run of task=train data=csv"),
    case("predict-untrained-run", "task=predict",
         f"task.run={FORWARD_RUN}", f"data.path={PENGUINS}",
         key="task.run", value="demo' was not trained",
         fix="Train one first: python scripts/run.py task=train"),
    case("predict-missing-column", *PREDICT,
         f"data.path={TESTS / 'data' / 'tables' / 'two_class.csv'}",
         key="data.path", value="the file has no column 'island', which the run was "
         "trained on", fix="The run needs the columns: island, bill_length_mm"),
    case("predict-without-file", *PREDICT, key="data.path",
         value="task=predict needs the file to predict", fix="Add data.path=<file>"),
    case("evaluate-without-target", "task=evaluate", f"task.run={SPECIES_RUN}",
         f"data.path={DATA / 'penguins_unlabelled.csv'}", key="data.path",
         value="the file has no column 'species', the run's target",
         fix="use task=predict for a file without labels"),
    case("predict-with-a-data-set", *PREDICT, "data=csv", key="data",
         value="data=csv would be ignored", fix="give the file as data.path=<file>"),
    case("predict-with-a-data-option", *PREDICT, "data.target=sex",
         key="data.target", value="it takes data.path, data.delimiter, data.na_values",
         fix="Drop data.target"),
]  # fmt: skip

CASES = (
    OVERRIDE_CASES + FILE_CASES + TRAIN_CASES + EXPORT_CASES + DATA19_CASES
    + TRAIN19_CASES + CLI19_CASES + ISSUE20_H1_CASES + ISSUE21_CASES
    + ISSUE21_PREDICT_CASES
)  # fmt: skip
# The corpus's file list includes this case's model file.
FILE_CASES.extend(
    param for param in CLI19_CASES if param.id == "file-layer_key_left_out"
)


def physical_memory() -> int:
    """This machine's physical memory, from the OS (not from annfactory's guard,
    which the tests check): no device has more available than this."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _might_fit(count: int) -> bool:
    return count <= physical_memory()


@pytest.fixture(autouse=True)
def _skip_if_the_huge_run_could_fit(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    needed = NEEDS_BYTES.get(callspec.id, 0) if callspec is not None else 0
    if needed and _might_fit(needed):
        pytest.skip(f"this machine has {physical_memory():,} bytes: the run may fit")


def message_lines(stderr: str) -> list[str]:
    """The lines of annfactory's message: Hydra's framing and blank lines left out,
    and the prefix of an overrides error removed."""
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(FRAMING)
    ]
    if lines:
        lines[0] = lines[0].removeprefix(OVERRIDES_PREFIX)
    return lines


def assert_names_the_problem(lines: list[str], bad: Bad) -> None:
    """At most three lines: ``<config path>: <what is wrong>``, then the fix."""
    text = "\n".join(lines)
    assert 1 <= len(lines) <= 3, text
    assert lines[0].startswith(f"{bad.key}: "), text
    assert bad.value in text, text
    assert bad.fix in text, text


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
    files = {path.stem for path in (BAD_INPUTS / "model").glob("*.yaml")}
    assert files == {param.id.removeprefix("file-") for param in FILE_CASES}


@pytest.fixture
def no_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any parameter memory is allocated."""
    from annfactory import factory

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parameter memory was allocated")

    monkeypatch.setattr(factory, "_fill", refuse)


def fail_in_process(bad: Bad) -> None:
    """What the command line does before and in its job: check the overrides (with
    the config dirs), compose, validate, build."""
    overrides = bad.overrides
    if bad.config_dirs:
        # annfactory.compose checks the overrides itself, without config dirs.
        check_overrides(overrides, bad.config_dirs)
        overrides = [*overrides, f"hydra.searchpath=[file://{BAD_INPUTS}]"]
    cfg = annfactory.compose(overrides)
    spec = annfactory.to_spec(cfg)
    if not {"task=train", "task=export", *PREDICT_TASKS} & set(overrides):
        annfactory.build_network(spec)
        return
    # The train and export tasks' own checks (a data set is chosen, the loss, the
    # device, the run to export), made before they build the network.
    from omegaconf import OmegaConf

    from annfactory.tasks import run_named_task

    task = OmegaConf.to_container(cfg.task, resolve=True)
    run_named_task(task, spec, None, out=io.StringIO())


#: The cases that also run on the command line: one of each family of errors. The
#: command line wraps every message of a family in the same way, so one case of each
#: checks that wrapping; the in-process tests check every message.
COMMAND_LINE_CASES = {
    "unknown-activation": "a name, refused before Hydra composes",
    "out-features-word": "a value of the wrong type, from the spec's check",
    "trunc-normal-a-equals-b": "an init's options that contradict each other",
    "missing-value": "Hydra's and OmegaConf's errors, re-rendered",
    "override-without-key": "an override Hydra cannot parse",
    "lookalike-model": "a non-ASCII look-alike letter",
    "target-on-a-layer": "an import path or _target_",
    "batch-too-large": "the memory guard, before allocation",
    "tensor-beyond-int64-on-meta": "a tensor torch cannot describe",
    "file-malformed_yaml": "a model file of the user's that does not parse",
    "file-unknown_layer_type": "a model file of the user's that does not validate",
    "transformer-nhead-not-dividing": "a sequence layer's shape rule",
    "ucr-unknown-dataset": "data=ucr: a set sktime does not ship",
    "csv-text-cell": "data=csv: a file that does not load",
    "zero-epochs": "task=train's own options",
    "in-features-against-data": "the network against the data",
    "export-missing-run": "task=export's run",
    "csv-semicolon-separated": "a CSV file's layout",
    "table-unknown-type-column": "a user's table: its columns and their types",
    "one-row-steps-with-batch-norm": "training steps the network cannot take",
    "hydra-key-misspelled": "Hydra's own keys",
    "file-layer_key_left_out": "a key a model file of the user's left out",
    "cnn-pool-larger-than-input": "a layer that does not fit its input's shape",
    "file-conv_without_flatten": "a shape whose fix is a command",
    "init-std-overflows-float32": "an init value the dtype cannot hold",
    "predict-missing-column": "task=predict: a file against the trained run",
}
#: The tasks of ISSUE21_PREDICT_CASES, run in process like task=train.
PREDICT_TASKS = ("task=predict", "task=evaluate")


def on_the_command_line(cases: list[Any]) -> list[Any]:
    """The cases of ``cases`` that also run on the command line."""
    return [param for param in cases if param.id in COMMAND_LINE_CASES]


#: The marker of the cases that only ``make test`` runs in this process.
HEAVY = pytest.mark.heavy


def fast(param: Any) -> bool:
    """Whether the fast tier checks this case in this process: one case of each
    family that loads no data and no saved run (each case composes a few times)."""
    args = set(param.values[0].args)
    return (
        param.id in COMMAND_LINE_CASES
        and not {"task=train", "task=export", *PREDICT_TASKS} & args
    )


def in_tiers(cases: list[Any]) -> list[Any]:
    """Every case; those the fast tier leaves out marked heavy (``make test`` only)."""
    return [
        param
        if fast(param)
        else pytest.param(*param.values, id=param.id, marks=(*param.marks, HEAVY))
        for param in cases
    ]


@pytest.mark.parametrize("bad", in_tiers(CASES))
@pytest.mark.usefixtures("no_allocation")
def test_bad_input_in_process(bad: Bad) -> None:
    """The checks that the command line makes, in this process (fast)."""
    with pytest.raises(ConfigError) as info:
        fail_in_process(bad)
    assert_names_the_problem(str(info.value).splitlines(), bad)


@pytest.mark.slow
@pytest.mark.parametrize("bad", on_the_command_line(CASES))
def test_bad_input_on_the_command_line(run_cli: RunCli, bad: Bad) -> None:
    result = run_cli(*bad.args, timeout=60)

    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert_names_the_problem(message_lines(result.stderr), bad)
    for name in OUTPUTS:
        assert not (result.run_dir / name).exists(), name
    if result.run_dir.exists():
        assert not list(result.run_dir.glob(".staging-*"))
    # Nor beside it: the staging folder goes with the process.
    assert not list(result.run_dir.parent.glob(".staging-*"))


# ------------------------------------------------------------------------------------
# The memory guard
# ------------------------------------------------------------------------------------


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int


def run_measured(args: list[str], run_dir: Path, timeout: float = 60) -> Measured:
    """Run ``scripts/run.py`` and measure the peak memory (RSS) of that process."""
    stdout, stderr = run_dir.with_suffix(".out"), run_dir.with_suffix(".err")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    start = time.perf_counter()
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(RUN_PY), *args, f"hydra.run.dir={run_dir}"],
            stdout=out,
            stderr=err,
            cwd=run_dir.parent,
            env=env,
        )
        # os.wait4 reaps this one child and gives its own resource usage.
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux.
    return Measured(
        process.returncode,
        stdout.read_text(),
        stderr.read_text(),
        usage.ru_maxrss * 1024,
    )


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.wait4 units")
def test_a_network_too_large_is_refused_before_allocation(tmp_path: Path) -> None:
    if _might_fit(HUGE_BYTES):
        pytest.skip(f"this machine has {physical_memory():,} bytes: it may fit")
    refused = run_measured(list(HUGE_MLP), tmp_path / "huge")
    lines = message_lines(refused.stderr)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert lines[0].startswith(
        "model: the run needs 1,120.1 GB: 1,120.0 GB for the network's parameters"
    ), lines
    assert "and 64.0 MB for a batch of 5 rows and its activations" in lines[0]
    assert re.search(r"; cpu has [\d,.]+ [GM]B available\.$", lines[0]), lines
    assert "use device=meta for a dry run" in lines[1]
    # Python, Hydra and torch take a few hundred MB; the network would take 1.1 TB.
    assert refused.peak_rss_bytes < 1.5e9, refused.peak_rss_bytes
    assert not (tmp_path / "huge" / "metrics.json").exists()

    # The same network on the meta device: shapes and counts, no memory.
    meta = run_measured([*HUGE_MLP, "device=meta"], tmp_path / "meta")
    assert meta.returncode == 0, meta.stderr
    assert meta.peak_rss_bytes < 1.5e9, meta.peak_rss_bytes
    assert f"parameters={HUGE_PARAMS:,}" in meta.stdout


def test_the_memory_guard_counts_parameters_buffers_batch_and_activations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annfactory import factory

    spec = annfactory.to_spec(
        annfactory.compose(["+layer@model.layers.norm=batch_norm", "dtype=float64"])
    )
    modules = factory._meta_layers(spec)
    # 26 parameters of the demo, the norm's 2 + 2 affine ones and its 2 + 2 running
    # statistics in float64; num_batches_tracked in int64.
    network = factory.estimate_bytes(modules, torch.float64)
    assert network == (26 + 4 + 4) * 8 + 8
    # 5 rows: the input (3 values), each linear layer's output and its activation's
    # (3, 2 and 2 values), and the norm's output (2 values, no activation).
    batch = factory.batch_bytes(spec)
    assert batch == 5 * (3 + 2 * 3 + 2 * 2 + 2 * 2 + 2) * 8
    needed = network + batch

    def available(count: float) -> None:
        monkeypatch.setattr(factory, "available_bytes", lambda device: count)

    available(needed)
    # The batch takes more than the network here, so the message names batch_size.
    with pytest.raises(MemoryLimitError, match=r"^batch_size: the run needs") as info:
        factory.check_memory(spec, modules)
    assert f"needs {needed:,} bytes: {network:,} bytes for the network's" in str(
        info.value
    )
    assert f"and {batch:,} bytes for a batch of 5 rows" in str(info.value)
    assert "device=meta" in str(info.value)
    assert isinstance(info.value, MemoryError)
    # More than needed, but the run would take more than the share it may have.
    available(needed / 0.95)
    with pytest.raises(MemoryLimitError):
        factory.check_memory(spec, modules)
    available(needed / factory.MEMORY_HEADROOM)
    factory.check_memory(spec, modules)  # fits, with the headroom
    factory.check_memory(replace_device(spec, "meta"), modules)  # never checked


def test_the_memory_guard_names_the_model_when_it_takes_the_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annfactory import factory

    spec = annfactory.to_spec(annfactory.compose(["model=mlp", "batch_size=1"]))
    modules = factory._meta_layers(spec)
    network = factory.estimate_bytes(modules, torch.float32)
    batch = factory.batch_bytes(spec)
    assert batch == (8 + 2 * 32 + 2 * 32 + 2) * 4 < network
    monkeypatch.setattr(factory, "available_bytes", lambda device: batch + 100)
    with pytest.raises(
        MemoryLimitError,
        match=r"^model: the run needs .* a batch of 1 row and .*\n"
        r"  Make the network smaller, or use device=meta",
    ):
        factory.check_memory(spec, modules)


@pytest.mark.heavy
def test_the_memory_guard_names_the_layer_whose_width_takes_the_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not batch_size, although the batch's activations take more than the network:
    one row does not fit either, and linear1's width is what takes the memory."""
    from annfactory import factory

    monkeypatch.setattr(factory, "available_bytes", lambda device: 10**9)
    spec = annfactory.to_spec(annfactory.compose(list(WIDE_LAYER)))
    modules = factory._meta_layers(spec)
    width = 9_999_999_999_999
    # linear1: 3 -> width, linear2: width -> 2; its outputs and sigmoid's for 5 rows.
    parameters = (3 * width + width) + (width * 2 + 2)
    outputs = 5 * width * 2
    assert factory.batch_bytes(spec) > factory.estimate_bytes(modules, torch.float32)
    with pytest.raises(
        MemoryLimitError,
        match=rf"^{LAYER}\.out_features: 9,999,999,999,999 makes the run need "
        r"640,000\.0 GB, 640,000\.0 GB of it for linear1's outputs for a batch of 5 "
        r"rows and its parameters and linear2's; cpu has 1\.0 GB available\.\n"
        rf"  Use a smaller {LAYER}\.out_features, or device=meta",
    ):
        factory.check_memory(spec, modules)
    assert 4 * (parameters + outputs) == pytest.approx(640e12, rel=1e-3)


@pytest.mark.heavy
def test_the_memory_guard_says_how_many_rows_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annfactory import factory

    spec = annfactory.to_spec(annfactory.compose(list(HUGE_BATCH)))
    modules = factory._meta_layers(spec)
    network = factory.estimate_bytes(modules, torch.float32)
    per_row = (8 + 2 * 32 + 2 * 32 + 2) * 4
    monkeypatch.setattr(
        factory, "available_bytes", lambda device: (network + 1000 * per_row) / 0.9
    )
    with pytest.raises(
        MemoryLimitError, match=r"Use a smaller batch_size \(at most 1,000 fit\)"
    ):
        factory.check_memory(spec, modules)


def replace_device(spec: annfactory.RunSpec, device: str) -> annfactory.RunSpec:
    from dataclasses import replace

    return replace(spec, device=device)


@pytest.mark.usefixtures("no_allocation")
def test_the_memory_guard_runs_before_any_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annfactory import factory

    monkeypatch.setattr(factory, "available_bytes", lambda device: 1000)
    spec = annfactory.to_spec(annfactory.compose(["model=mlp"]))
    parameters = (8 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2) * 4
    batch = 5 * (8 + 2 * 32 + 2 * 32 + 2) * 4
    with pytest.raises(
        MemoryLimitError,
        match=rf"needs {parameters + batch:,} bytes: .* has 1,000 bytes available",
    ):
        annfactory.build_network(spec)


def test_available_memory_is_known_on_this_machine() -> None:
    from annfactory.factory import available_bytes

    available = available_bytes(torch.device("cpu"))
    assert available is not None
    assert 0 < available <= physical_memory()
    assert available_bytes(torch.device("meta")) is None


# ------------------------------------------------------------------------------------
# Shapes (issue 13): layers that do not fit their input name the layer and the shapes
# ------------------------------------------------------------------------------------

SHAPE_FIX = "Change its options, the layers before it, or the model's input shape"

SHAPE_CASES = [
    user_file("conv_on_vector", key="model.layers.conv",
              value="'conv2d' cannot take the input shape [64]",
              fix="~model.in_features '+model.input_shape=[1,8,8]' (its 64 values"),
    user_file("pool_larger_than_input", key="model.layers.pool",
              value="kernel_size 16 > input 8x8", fix=SHAPE_FIX),
    user_file("zero_out_channels", key="model.layers.conv.out_channels",
              value="0 is out of range", fix="an integer >= 1 (output channels)"),
    user_file("conv_padding_typo", key="model.layers.conv.padding",
              value="'sme'", fix="Did you mean 'same'?"),
    case("conv-after-vector-layers", "+layer@model.layers.conv=conv2d",
         "model.layers.conv.out_channels=4", "model.layers.conv.kernel_size=3",
         key="model.layers.conv", value="input shape [2]",
         fix="[channels, height, width]"),
    case("conv-kernel-list-too-long", "--config-dir", str(BAD_INPUTS),
         "model=conv_padding_typo", "model.layers.conv.padding=1",
         "model.layers.conv.kernel_size=[3,3,3]",
         key="model.layers.conv.kernel_size", value="[3, 3, 3]",
         fix="a list of 2 of them"),
    case("cnn-pool-larger-than-input", "model=cnn", "model.layers.pool1.kernel_size=16",
         key="model.layers.pool1", value="kernel_size 16 > input 8x8", fix=SHAPE_FIX),
    case("cnn-conv-out-channels-zero", "model=cnn", "model.layers.conv2.out_channels=0",
         key="model.layers.conv2.out_channels", value="0 is out of range",
         fix="an integer >= 1"),
    case("cnn-on-data-without-images", *TRAIN[:1], "model=cnn", "data=iris",
         "task.epochs=1", key="model.input_shape",
         value="images of shape [1, 8, 8], and data=iris has rows of 4 features",
         fix="use data=digits, or model=mlp for these rows"),
    user_file("residual_mismatch", key="model.layers.block",
              value="adds its input, of shape [16], to its layers' output, of shape "
              "[8]", fix="Set +model.layers.block.projection=true"),
    case("resmlp-block-changes-the-width", "model=resmlp",
         "model.layers.block1.layers.fc2.out_features=16", key="model.layers.block1",
         value="of shape [32], to its layers' output, of shape [16]",
         fix="Set model.layers.block1.projection=true"),
    case("resmlp-nested-type-typo", "model=resmlp",
         "model.layers.block2.layers.fc1.type=lineer",
         key="model.layers.block2.layers.fc1.type", value="'lineer'",
         fix="Did you mean 'linear'?"),
]  # fmt: skip

# Issue 19: each message's suggested fix is a command that works as written
# (tests/test_suggestions.py follows them).
SUGGEST19_CASES = [
    user_file("conv_without_flatten", "task=train", "data=digits",
              key="model.layers.out",
              value="acts on the last dimension of its input, of shape [4, 8, 8]",
              fix="~model.layers.out '+model.layers.flatten={type: flatten}' "
              "'+model.layers.out={type: linear, out_features: 10}'"),
    case("cnn-without-flatten", *TRAIN[:1], "model=cnn", "data=digits",
         "~model.layers.flatten", key="model.layers.out",
         value="of shape [32, 1, 1], so the network gives [32, 1, 10] per row",
         fix="'+model.layers.flatten={type: flatten}'"),
    user_file("empty_residual", key="model.layers.block.layers", value="no layers",
              fix="'+model.layers.block.layers.fc1={type: linear, out_features: 6}'"),
    case("resmlp-ending-with-a-block", *TRAIN[:1], "model=resmlp", "data=iris",
         "~model.layers.out", key="model.layers.block2",
         value="gives 32 outputs per row (layer block2, residual)",
         fix="'+model.layers.head={type: linear, out_features: 3}'"),
    case("cnn-on-images-of-another-shape", *TRAIN[:1], "model=cnn", "data=digits",
         "model.input_shape=[2,8,8]", key="model.input_shape",
         value="images of shape [2, 8, 8], and data=digits has images of shape "
         "[1, 8, 8]", fix="Use 'model.input_shape=[1,8,8]'"),
    case("demo-softmax-on-a-regression-target", *TRAIN[:1], "model=demo",
         "data=diabetes", key="model.layers.out.activation",
         value="cannot end with softmax",
         fix="Use model.layers.out.activation=identity"),
]  # fmt: skip
SHAPE_CASES.extend(SUGGEST19_CASES)

# Issue 23: sequence layers.
SEQUENCE_CASES = [
    case("lstm-on-vectors", "model=lstm", "model.input_shape=[8]",
         key="model.layers.rnn",
         value="it takes a sequence [time, features], not a vector [features]",
         fix="Change its options, the layers before it"),
    case("lstm-on-images", "model=lstm", "model.input_shape=[1,8,8]",
         key="model.layers.rnn",
         value="not a channel map [channels, height, width]",
         fix="Change its options, the layers before it"),
    case("transformer-nhead-not-dividing", "model=transformer",
         "model.layers.encoder.nhead=5", key="model.layers.encoder",
         value="nhead 5 does not divide d_model 32 (the input's features)",
         fix="allowed: 1, 2, 4, 8, 16, 32"),
    case("lstm-hidden-size-zero", "model=lstm", "model.layers.rnn.hidden_size=0",
         key="model.layers.rnn.hidden_size", value="0 is out of range",
         fix="an integer >= 1"),
    case("embedding-after-linear", "+layer@model.layers.emb=embedding",
         "model.layers.emb.num_embeddings=10", "model.layers.emb.embedding_dim=4",
         key="model.layers.emb", value="input shape [2]: it takes integer ids [time] "
         "(the model's input), not a vector [features]",
         fix="Change its options, the layers before it"),
    case("positional-max-length-short", "model=transformer",
         "model.layers.pos.max_length=10", key="model.layers.pos",
         value="max_length 10 is shorter than the sequence (24 steps)",
         fix="set max_length >= 24"),
    case("lstm-hidden-size-huge", "model=lstm", "model.layers.rnn.hidden_size=200000",
         key="model.layers.rnn.hidden_size", value="200,000 makes the run need",
         fix="Use a smaller model.layers.rnn.hidden_size"),
    case("transformer-sequence-huge", "model=transformer",
         "model.input_shape=[200000,1]", "model.layers.pos.max_length=200000",
         key="model.layers.encoder",
         value="its attention over 200,000 steps makes the run need",
         fix="Use a shorter sequence (pool its steps first)"),
    case("ucr-unknown-dataset", "task=train", "model=lstm", "data=ucr",
         "data.dataset=GunPiont", key="data.dataset",
         value="unknown UCR/UEA set 'GunPiont'", fix="Did you mean 'GunPoint'?"),
    series_case("series-unknown-column", "series.csv", "data.column=sale",
                key="data.column", value="no column 'sale'",
                fix="Did you mean 'sales'?"),
    series_case("series-gap", "series_gap.csv", key="data.column",
                value="has no value in row 14", fix="Fill the gap in the file"),
    series_case("series-text-cell", "series_text.csv", key="data.column",
                value="holds 'n/a?' in row 22: not a number", fix="fix the cell"),
    series_case("series-window-too-long", "series.csv", "data.window=40",
                key="data.window", value="has 40 steps: a window of 40",
                fix="Use a shorter data.window"),
    series_case("series-season-longer-than-window", "series.csv", "data.window=6",
                "data.season=7", key="data.season",
                value="7 is longer than data.window 6", fix="Use data.window=7"),
    series_case("series-no-training-row", "series.csv", "data.window=30",
                "data.horizon=5", key="data.val_fraction",
                value="6 rows leave no training row", fix="Lower data.val_fraction"),
]  # fmt: skip
SHAPE_CASES.extend(SEQUENCE_CASES)

# The corpus's file list includes these model files.
FILE_CASES.extend(param for param in SHAPE_CASES if param.id.startswith("file-"))


@pytest.mark.parametrize("bad", in_tiers(SHAPE_CASES))
@pytest.mark.usefixtures("no_allocation")
def test_shape_bad_input_in_process(bad: Bad) -> None:
    test_bad_input_in_process(bad)


@pytest.mark.slow
@pytest.mark.parametrize("bad", on_the_command_line(SHAPE_CASES))
def test_shape_bad_input_on_the_command_line(run_cli: RunCli, bad: Bad) -> None:
    test_bad_input_on_the_command_line(run_cli, bad)


# ------------------------------------------------------------------------------------
# Issue 19: init options whose values the dtype cannot hold, caught right after the
# init fills the parameter (so after allocation: not in CASES, whose in-process test
# refuses any allocation)
# ------------------------------------------------------------------------------------

INIT_VALUE_CASES = [
    case("init-std-overflows-float32", "model=mlp", "init=normal", "init.std=1e308",
         key="init", value="normal(mean=0, std=1e+308) cannot fill hidden1.weight",
         fix="e.g. init.std=1"),
    case("init-uniform-bounds-overflow", "model=mlp", "init=uniform",
         "init.a=-1e308", "init.b=1e308", key="init",
         value="uniform(a=-1e+308, b=1e+308)", fix="e.g. init.a=-1 init.b=1"),
    case("init-constant-overflows-float32", f"init@{LAYER}.bias_init=constant",
         f"{LAYER}.bias_init.val=1e39", key=f"{LAYER}.bias_init",
         value="constant(val=1e+39)", fix=f"e.g. {LAYER}.bias_init.val=1"),
    case("init-std-overflows-float16", "model=mlp", "dtype=float16", "init=normal",
         "init.std=1e5", key="init", value="in float16 (largest value 6.55e+04)",
         fix="e.g. init.std=1"),
    case("init-std-overflows-in-train", *TRAIN, "data=moons", "task.epochs=1",
         "init=normal", "init.std=1e308", key="init",
         value="normal(mean=0, std=1e+308)", fix="e.g. init.std=1"),
]  # fmt: skip


@pytest.mark.parametrize("bad", in_tiers(INIT_VALUE_CASES))
def test_init_value_bad_input_in_process(bad: Bad) -> None:
    with pytest.raises(ConfigError) as info:
        fail_in_process(bad)
    assert_names_the_problem(str(info.value).splitlines(), bad)


@pytest.mark.slow
@pytest.mark.parametrize("bad", on_the_command_line(INIT_VALUE_CASES))
def test_init_value_bad_input_on_the_command_line(run_cli: RunCli, bad: Bad) -> None:
    test_bad_input_on_the_command_line(run_cli, bad)


@pytest.mark.heavy
@pytest.mark.parametrize(
    "bad",
    [param for param in CLI19_CASES if "+ adds it: " in param.values[0].fix],
)
def test_the_plus_form_that_a_message_suggests_composes(bad: Bad) -> None:
    """The suggested ``+`` override, put in place of the one that failed, works."""
    with pytest.raises(ConfigError) as info:
        fail_in_process(bad)
    suggested = str(info.value).rpartition("+ adds it: ")[2].strip()
    fixed = Bad((*bad.args[:-1], suggested), bad.key, bad.value, bad.fix)
    overrides = fixed.overrides
    if fixed.config_dirs:
        overrides = [*overrides, f"hydra.searchpath=[file://{BAD_INPUTS}]"]
    spec = annfactory.to_spec(annfactory.compose(overrides))
    annfactory.build_network(spec)


def test_every_command_line_case_is_in_the_corpus() -> None:
    """A renamed case is not dropped from the command line without notice."""
    ids = {param.id for param in CASES + SHAPE_CASES + INIT_VALUE_CASES}
    assert set(COMMAND_LINE_CASES) <= ids, set(COMMAND_LINE_CASES) - ids
