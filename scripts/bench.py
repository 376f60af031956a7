"""Benchmark: annfactory against hand-written PyTorch, measured side by side.

Each figure runs both sides in one process (or as subprocesses started alternately),
interleaving the two sides and reporting medians, then prints a table of ratios with
their targets and writes it as JSON:

    python scripts/bench.py                  # all figures, bench.json
    python scripts/bench.py --quick          # fewer repeats
    python scripts/bench.py --only small_forward,build --out /tmp/bench.json
    python scripts/bench.py --compile        # also torch.compile's time and speed
    python scripts/bench.py --only end_to_end --repeats 15
    python scripts/bench.py --only train     # task=train's cost per epoch
    python scripts/bench.py --only table     # issue 21: a 1,000,000-row CSV
    python scripts/bench.py --only checkpoint  # issue 22: the cost of checkpoints
    python scripts/bench.py --only sequence    # issue 23: model=lstm on GunPoint
    python scripts/bench.py --only table --table-rows 20000 --repeats 1

The targets are ratios, so they hold on any machine. Exit status 1 if a target is
missed. End to end, ``run.py model=demo`` is judged against the same network written
as a plain ``@hydra.main`` application (Hydra's own start-up is the floor any Hydra
application pays); its ratio to a bare script is shown for information. Figures that
start processes also report their CPU time, steadier than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUN_PY = str(REPO / "scripts" / "run.py")
PYTHON = sys.executable


@dataclass
class Figure:
    """One line of the table: both sides' medians and their ratio against a target."""

    name: str
    measured_as: str
    ours: float
    reference: float
    unit: str
    target: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours / self.reference

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


def interleaved(
    ours: Callable[[], float], reference: Callable[[], float], repeats: int
) -> tuple[float, float]:
    """Median of each side, alternating which side goes first."""
    a: list[float] = []
    b: list[float] = []
    for index in range(repeats):
        if index % 2 == 0:
            a.append(ours())
            b.append(reference())
        else:
            b.append(reference())
            a.append(ours())
    return statistics.median(a), statistics.median(b)


def timed(function: Callable[[], Any], number: int = 1) -> Callable[[], float]:
    """A measurement: seconds per call of ``function`` over ``number`` calls."""

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(number):
            function()
        return (time.perf_counter() - start) / number

    return measure


#: Runs a Python script or ``-c`` code and reports the process's own peak RSS at exit.
#: Linux's ru_maxrss of a child carries over the parent's peak across fork and exec
#: (this benchmark's own process holds large tensors), so the peak is read from
#: /proc/self/status (VmHWM: the high-water mark of this process's memory since exec).
PEAK_WRAPPER = """
import atexit, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write(f"BENCH_PEAK_KB {line.split()[1]}\\n")
atexit.register(_peak)
sys.argv = sys.argv[1:]
if sys.argv[0] == "-c":
    sys.argv = ["-c", *sys.argv[2:]]
    exec(compile(__code__, "<string>", "exec"), {"__name__": "__main__"})
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def process(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, int, float]:
    """Run ``[python, script-or--c, ...]`` (in ``env``, default this process's
    environment); return its wall time (s), peak RSS (bytes: VmHWM, what
    ``/usr/bin/time -v`` reports as its maximum resident set size) and CPU time
    (user + system, s)."""
    assert command[0] == PYTHON
    arguments = command[1:]
    wrapper = PEAK_WRAPPER
    if arguments[0] == "-c":
        wrapper = f"__code__ = {arguments[1]!r}\n" + wrapper
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", wrapper, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        env=env,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    peaks = [
        line for line in done.stderr.splitlines() if line.startswith("BENCH_PEAK_KB")
    ]
    return wall, int(peaks[-1].split()[1]) * 1024, cpu


@dataclass
class Sample:
    """Medians over the repeats of one command."""

    wall: float
    peak: float
    cpu: float
    #: What the command reported of its own timing (s), where it is read: the
    #: wall time of its training loop, without the process's start-up.
    loop: float = float("nan")


def process_rotation(
    commands: dict[str, list[str]],
    repeats: int,
    env: dict[str, str] | None = None,
    loop: Callable[[str], float] | None = None,
) -> dict[str, Sample]:
    """Medians of wall time, peak RSS and CPU time for each command, started in turn
    (in ``env``); each repeat starts with the next command, so none is always first
    or last. ``loop(name)``, read after each run, gives its ``Sample.loop``."""
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in commands}
    names = list(commands)
    for index in range(repeats):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            measured = process(commands[name], env)
            extra = () if loop is None else (loop(name),)
            runs[name].append((*measured, *extra))
    return {
        name: Sample(
            *(statistics.median(values) for values in zip(*samples, strict=True))
        )
        for name, samples in runs.items()
    }


def process_pair(
    ours: list[str], reference: list[str], repeats: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians of (wall, peak RSS) for both commands, started alternately."""
    samples = process_rotation({"ours": ours, "reference": reference}, repeats)
    return (
        (samples["ours"].wall, samples["ours"].peak),
        (samples["reference"].wall, samples["reference"].peak),
    )


# --------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------


def small_forward(repeats: int) -> Figure:
    import torch
    from torch import nn

    import annfactory

    torch.set_num_threads(1)
    model = annfactory.build_model(annfactory.compose(["model=demo"]))

    class Demo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear1 = nn.Linear(3, 3)
            self.linear2 = nn.Linear(3, 2)
            self.out = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.sigmoid(self.linear1(x))
            x = torch.relu(self.linear2(x))
            return torch.softmax(self.out(x), dim=-1)

    hand = Demo()
    hand.load_state_dict(model.state_dict())
    model.eval()
    hand.eval()
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(model(x), hand(x))
        for _ in range(200):  # warm up both
            model(x)
            hand(x)
        ours, reference = interleaved(
            timed(lambda: model(x), 2000), timed(lambda: hand(x), 2000), repeats * 4
        )
    return Figure(
        "small forward",
        "model=demo vs the same nn.Module by hand, batch 5, 1 thread, no_grad",
        ours * 1e6,
        reference * 1e6,
        "µs",
        1.05,  # issue 20: __call__ on every child (torch's public path)
    )


def large_forward(repeats: int) -> Figure:
    import torch
    from torch.nn import functional

    import annfactory

    torch.set_num_threads(2)
    cfg = annfactory.compose(
        [
            "model=mlp",
            "model.in_features=2048",
            "model.width=2048",
            "model.depth=4",
            "model.out_features=2048",
            "activation=relu",
        ]
    )
    model = annfactory.build_model(cfg).eval()
    weights = [(layer.weight, layer.bias) for layer in _linears(model)]

    def chain(x: torch.Tensor) -> torch.Tensor:
        for index, (weight, bias) in enumerate(weights):
            x = functional.linear(x, weight, bias)
            if index < len(weights) - 1:
                x = torch.relu(x)
        return x

    x = torch.randn(256, 2048)
    with torch.no_grad():
        assert torch.equal(model(x), chain(x))
        for _ in range(5):
            model(x)
            chain(x)
        ours, reference = interleaved(
            timed(lambda: model(x), 20), timed(lambda: chain(x), 20), repeats * 2
        )
    torch.set_num_threads(1)
    return Figure(
        "large forward",
        "model=mlp 4 x 2048 relu, batch 256 vs F.linear + relu on the same weights, "
        "2 threads",
        ours * 1e3,
        reference * 1e3,
        "ms",
        1.05,
    )


def _linears(model: Any) -> list[Any]:
    from torch import nn

    return [m for m in model.children() if isinstance(m, nn.Linear)]


BUILD_OVERRIDES = [
    "model=mlp",
    "model.in_features=4096",
    "model.width=4096",
    "model.depth=7",
    "model.out_features=4096",
    "init=xavier_normal",
]


def build(repeats: int) -> Figure:
    import gc
    import math

    import torch

    import annfactory

    torch.set_num_threads(1)
    cfg = annfactory.compose(BUILD_OVERRIDES)
    spec = annfactory.to_spec(cfg)
    shapes = [
        (p.shape, p.init) for layer in spec.network.layers for p in layer.parameters
    ]

    def ours() -> None:
        model = annfactory.build_network(spec)
        del model
        gc.collect()

    def reference() -> None:
        tensors = []
        for shape, init in shapes:
            tensor = torch.empty(shape)
            if init.name == "xavier_normal":
                torch.nn.init.xavier_normal_(tensor, gain=init.params["gain"])
            else:
                torch.nn.init.uniform_(tensor, init.params["a"], init.params["b"])
            tensors.append(tensor)
        del tensors
        gc.collect()

    ours_s, reference_s = interleaved(timed(ours), timed(reference), repeats)
    count = sum(math.prod(shape) for shape, _ in shapes)
    return Figure(
        "build",
        "model=mlp 8 x 4096² xavier_normal vs torch.empty + the same inits",
        ours_s,
        reference_s,
        "s",
        1.10,
        {"parameters": count},
    )


def peak_memory(repeats: int) -> Figure:
    overrides = repr(BUILD_OVERRIDES)
    ours = [
        PYTHON,
        "-c",
        "import annfactory; "
        f"m = annfactory.build_model(annfactory.compose({overrides})); "
        "print(sum(p.numel() for p in m.parameters()))",
    ]
    reference = [PYTHON, "-c", "import torch"]
    (_, ours_peak), (_, interpreter_peak) = process_pair(ours, reference, repeats)
    import annfactory

    spec = annfactory.to_spec(annfactory.compose(BUILD_OVERRIDES))
    parameter_bytes = spec.network.num_params * 4
    return Figure(
        "peak memory of a build",
        "peak RSS building the 4096² mlp vs parameter bytes + python with torch "
        "imported",
        ours_peak / 2**20,
        (parameter_bytes + interpreter_peak) / 2**20,
        "MiB",
        1.10,
        {
            "parameter_mib": parameter_bytes / 2**20,
            "interpreter_mib": interpreter_peak / 2**20,
        },
    )


def dry_run(repeats: int) -> Figure:
    with tempfile.TemporaryDirectory() as folder:
        ours = [
            PYTHON,
            RUN_PY,
            "device=meta",
            "model=mlp",
            "model.in_features=16384",
            "model.width=16384",
            "model.depth=39",
            "model.out_features=16384",
            f"hydra.run.dir={folder}/run",
        ]
        reference = [PYTHON, "-c", "import torch, torchinfo"]
        (ours_wall, ours_peak), (reference_wall, _) = process_pair(
            ours, reference, repeats
        )
    figure = Figure(
        "dry run",
        "run.py device=meta on a 40 x 16384² mlp (10.7 billion parameters) vs "
        '`python -c "import torch, torchinfo"`',
        ours_wall,
        reference_wall,
        "s",
        2.0,
        {"peak_rss_mib": ours_peak / 2**20, "peak_rss_target_mib": 400},
    )
    return figure


def config_only(repeats: int) -> Figure:
    ours = [PYTHON, RUN_PY, "--cfg", "job"]
    reference = [PYTHON, "-c", "import torch"]
    (ours_wall, _), (reference_wall, _) = process_pair(ours, reference, repeats)
    return Figure(
        "config only",
        '`run.py --cfg job` vs `python -c "import torch"`',
        ours_wall,
        reference_wall,
        "s",
        0.3,
    )


PLAIN_DEMO = """
import torch, torchinfo
from torch import nn

class Demo(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(3, 3)
        self.linear2 = nn.Linear(3, 2)
        self.out = nn.Linear(2, 2)
        nn.init.xavier_normal_(self.linear1.weight)
        nn.init.kaiming_normal_(self.linear2.weight, nonlinearity="relu")

    def forward(self, x):
        x = torch.sigmoid(self.linear1(x))
        x = torch.relu(self.linear2(x))
        return torch.softmax(self.out(x), dim=-1)

torch.manual_seed(0)
model = Demo()
x = torch.randn(5, 3)
with torch.no_grad():
    print(model(x))
print(torchinfo.summary(model, input_data=[x], verbose=0))
for name, p in model.named_parameters():
    print(name, list(p.shape), p.mean().item(), p.std().item())
"""


#: The demo as a plain Hydra application: what a user would write without annfactory,
#: with its own small config of the same network, printing the same summary.
PLAIN_HYDRA_CONFIG = """
seed: 0
batch_size: 5
model:
  in_features: 3
  layers:
    linear1: {out_features: 3, activation: sigmoid, weight_init: xavier_normal}
    linear2: {out_features: 2, activation: relu, weight_init: kaiming_normal}
    out: {out_features: 2, activation: softmax, weight_init: null}
"""

PLAIN_HYDRA_APP = """
import hydra
import torch
import torchinfo
from torch import nn

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "softmax": lambda: nn.Softmax(dim=-1),
}
INITS = {
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}


def build(model):
    net = nn.Sequential()
    width = model.in_features
    for name, layer in model.layers.items():
        linear = nn.Linear(width, layer.out_features)
        if layer.weight_init is not None:
            INITS[layer.weight_init](linear.weight)
        net.add_module(name, linear)
        net.add_module(f"{name}_act", ACTIVATIONS[layer.activation]())
        width = layer.out_features
    return net


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    torch.manual_seed(cfg.seed)
    model = build(cfg.model)
    x = torch.randn(cfg.batch_size, cfg.model.in_features)
    with torch.inference_mode():
        y = model(x)
    print(f"input shape:  {list(x.shape)}")
    print(f"output shape: {list(y.shape)}")
    print(y)
    print(
        torchinfo.summary(
            model,
            input_data=[x],
            col_names=("input_size", "output_size", "num_params"),
            row_settings=("var_names",),
            depth=2,
            verbose=0,
        )
    )
    for name, p in model.named_parameters():
        print(name, list(p.shape), p.mean().item(), p.std().item())


if __name__ == "__main__":
    main()
"""


def end_to_end(repeats: int) -> list[Figure]:
    """``run.py model=demo`` against the same network as a plain Hydra application
    (the target: Hydra's own start-up is the floor) and as a bare script (shown for
    information), all three started in turn."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "plain_demo.py"
        script.write_text(PLAIN_DEMO)
        app = Path(folder) / "hydra_app"
        (app / "conf").mkdir(parents=True)
        (app / "conf" / "config.yaml").write_text(PLAIN_HYDRA_CONFIG)
        (app / "demo_app.py").write_text(PLAIN_HYDRA_APP)
        samples = process_rotation(
            {
                "ours": [PYTHON, RUN_PY, "model=demo", f"hydra.run.dir={folder}/run"],
                "hydra": [
                    PYTHON,
                    str(app / "demo_app.py"),
                    f"hydra.run.dir={folder}/hydra_run",
                ],
                "script": [PYTHON, str(script)],
            },
            repeats,
        )
    ours = samples["ours"]
    return [
        Figure(
            "end to end",
            "`run.py model=demo` vs the same network as a plain `@hydra.main` app "
            "with its own config, printing the same torchinfo summary",
            ours.wall,
            samples["hydra"].wall,
            "s",
            1.10,  # issue 20: Hydra composes twice (hydra.mode; Hydra #3440)
            {"cpu_s": ours.cpu, "reference_cpu_s": samples["hydra"].cpu},
        ),
        Figure(
            "end to end vs a bare script",
            "`run.py model=demo` vs a plain script that builds the demo by hand, "
            "runs it, prints a torchinfo summary and its parameters",
            ours.wall,
            samples["script"].wall,
            "s",
            None,
            {"cpu_s": ours.cpu, "reference_cpu_s": samples["script"].cpu},
        ),
    ]


#: The plain sides' training loop: Adam, batches of 64, ``loss.item()`` every step,
#: validation every epoch; it writes the last validation accuracy and the loop's wall
#: time (s, as task=train's ``train.seconds``) to OUT.
PLAIN_LOOP = """
import time
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
loop_start = time.perf_counter()
for epoch in range(EPOCHS):
    model.train()
    order = torch.randperm(len(x_train))
    for start in range(0, len(x_train), 64):
        index = order[start : start + 64]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        loss.backward()
        optimizer.step()
        loss.item()
    model.eval()
    with torch.no_grad():
        outputs = model(x_val)
        val_loss = F.cross_entropy(outputs, y_val).item()
        accuracy = (outputs.argmax(1) == y_val).float().mean().item()
seconds = time.perf_counter() - loop_start
json.dump({"val_accuracy": accuracy, "seconds": seconds}, open(OUT, "w"))
"""


#: The digits split of the train figure's plain and scikit-learn sides: 1437 training
#: and 360 validation rows (task=train's val_fraction 0.2), standardized on the
#: training rows. Shared by both scripts, which print their validation accuracy.
TRAIN_DIGITS = """
import json, sys
import numpy as np
from sklearn.datasets import load_digits

EPOCHS, OUT = int(sys.argv[1]), sys.argv[2]
x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order], y[order]
train_rows = 1437
mean, std = x[:train_rows].mean(0), x[:train_rows].std(0)
std[std == 0] = 1
x = (x - mean) / std
x_train, x_val = x[:train_rows], x[train_rows:]
y_train, y_val = y[:train_rows], y[train_rows:]
"""

#: The issue's reference loop: the same MLP (64-32-32-10, relu), torch's default Adam,
#: ``loss.item()`` every step, validation every epoch.
PLAIN_TRAIN = (
    TRAIN_DIGITS
    + """
import torch
from torch import nn
from torch.nn import functional as F

torch.manual_seed(0)
x_train, x_val = (torch.tensor(a, dtype=torch.float32) for a in (x_train, x_val))
y_train, y_val = torch.tensor(y_train), torch.tensor(y_val)
model = nn.Sequential(
    nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
)
"""
    + PLAIN_LOOP
)

#: The same loop on one torch thread: what the thread count alone is worth (torch's
#: default, one thread per core, costs more than it gives on matrices this small and
#: far more on a busy machine; annfactory's loop takes one thread for small networks).
PLAIN_TRAIN_ONE_THREAD = PLAIN_TRAIN.replace(
    "torch.manual_seed(0)\n", "torch.manual_seed(0)\ntorch.set_num_threads(1)\n"
)

#: scikit-learn's MLPClassifier with the same layers and batch; ``n_iter_no_change``
#: at ``max_iter`` so that it runs every epoch it is given (its own stopping rule
#: would end some runs early and lower its cost per epoch).
SKLEARN_TRAIN = (
    TRAIN_DIGITS
    + """
import warnings
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)
model = MLPClassifier(
    hidden_layer_sizes=(32, 32), batch_size=64, max_iter=EPOCHS,
    n_iter_no_change=EPOCHS, random_state=0,
).fit(x_train, y_train)
assert model.n_iter_ == EPOCHS, model.n_iter_
json.dump({"val_accuracy": model.score(x_val, y_val)}, open(OUT, "w"))
"""
)

#: The epochs of the two runs whose difference gives the cost of one epoch.
TRAIN_EPOCHS = (20, 120)
TRAIN_ARGS = [
    "task=train",
    "model=mlp",
    "data=digits",
    "optimizer=adam",
    "optimizer.lr=0.001",
    "task.batch_size=64",
]


def marginal_epoch_ms(
    samples: dict[str, Sample], side: str, epochs: tuple[int, int], field: str
) -> float:
    """``(field at epochs[1] - at epochs[0])`` per epoch in ms, of the runs named
    ``<side><epochs>``; NaN (and a line on stderr) if the longer run was no slower,
    which fails a target rather than meet it with a negative ratio."""
    low, high = (samples[f"{side}{count}"] for count in epochs)
    cost = float(getattr(high, field) - getattr(low, field))
    cost = cost / (epochs[1] - epochs[0]) * 1e3
    if cost > 0:
        return cost
    print(
        f"{side}: {field} per epoch {cost:.3g} ms; use more --repeats", file=sys.stderr
    )
    return float("nan")


def train_speed(repeats: int) -> list[Figure]:
    """The marginal cost of one epoch, ``(wall at 120 epochs - wall at 20) / 100``,
    of ``run.py task=train model=mlp data=digits`` against the plain PyTorch loop and
    scikit-learn's MLPClassifier, all whole processes started in turn, so start-up
    cancels."""
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "plain_train.py"
        plain.write_text(PLAIN_TRAIN)
        sklearn = Path(folder) / "sklearn_train.py"
        sklearn.write_text(SKLEARN_TRAIN)
        one_thread = Path(folder) / "plain_train_one_thread.py"
        one_thread.write_text(PLAIN_TRAIN_ONE_THREAD)
        commands: dict[str, list[str]] = {}
        outputs: dict[str, Path] = {}
        for epochs in TRAIN_EPOCHS:
            run_dir = Path(folder) / f"run{epochs}"
            commands[f"ours{epochs}"] = [
                PYTHON,
                RUN_PY,
                *TRAIN_ARGS,
                f"task.epochs={epochs}",
                f"hydra.run.dir={run_dir}",
            ]
            outputs[f"ours{epochs}"] = run_dir / "metrics.json"
            for side, script in (
                ("plain", plain),
                ("plain1", one_thread),
                ("sklearn", sklearn),
            ):
                out = Path(folder) / f"{side}{epochs}.json"
                commands[f"{side}{epochs}"] = [
                    PYTHON,
                    str(script),
                    str(epochs),
                    str(out),
                ]
                outputs[f"{side}{epochs}"] = out
        samples = process_rotation(commands, repeats)
        accuracy = {}
        for side in ("ours", "plain", "plain1", "sklearn"):
            report = json.loads(outputs[f"{side}{TRAIN_EPOCHS[1]}"].read_text())
            accuracy[side] = report.get("train", report)["val_accuracy"]
    span = TRAIN_EPOCHS[1] - TRAIN_EPOCHS[0]

    def per_epoch(side: str, field: str = "wall") -> float:
        return marginal_epoch_ms(samples, side, TRAIN_EPOCHS, field)

    ours = per_epoch("ours")
    what = "`run.py " + " ".join(TRAIN_ARGS) + "`"
    figures = []
    for side, target, words in (
        ("plain", 0.85, "a plain PyTorch loop (Adam, loss.item() every step)"),
        ("plain1", None, "the same plain loop on one torch thread (information)"),
        ("sklearn", 1.0, "scikit-learn's MLPClassifier((32, 32), batch_size=64)"),
    ):
        figures.append(
            Figure(
                f"train epoch vs {side}",
                f"{what} vs {words}, digits 1437/360 rows: (wall at "
                f"{TRAIN_EPOCHS[1]} epochs - at {TRAIN_EPOCHS[0]}) / {span}",
                ours,
                per_epoch(side),
                "ms",
                target,
                {
                    "cpu_ms": per_epoch("ours", "cpu"),
                    "reference_cpu_ms": per_epoch(side, "cpu"),
                    "accuracy": accuracy["ours"],
                    "reference_accuracy": accuracy[side],
                },
            )
        )
    return figures


#: Issue 23: the plain side of the sequence figure, GunPoint as task=train splits it
#: (40 training and 10 validation rows of the archive's train part, standardized on
#: the training rows), the same nn.LSTM(1, 64) and linear head on its mean over time
#: (model=lstm's ``output: mean``), Adam, batches of 64, ``loss.item()`` every step,
#: validation every epoch; torch's thread setting (ONE_THREAD: one thread, as
#: annfactory trains a recurrent network).
PLAIN_LSTM = (
    """
import json, sys
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from sktime.datasets import load_UCR_UEA_dataset

EPOCHS, OUT = int(sys.argv[1]), sys.argv[2]
if ONE_THREAD:
    torch.set_num_threads(1)
x, y = load_UCR_UEA_dataset("GunPoint", split="train", return_type="numpy3D")
x = x.transpose(0, 2, 1)
y = np.unique(y, return_inverse=True)[1]
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order], y[order]
mean, std = x[:40].mean(axis=(0, 1)), x[:40].std(axis=(0, 1))
x = torch.tensor((x - mean) / std, dtype=torch.float32)
y = torch.tensor(y)
x_train, x_val, y_train, y_val = x[:40], x[40:], y[:40], y[40:]
torch.manual_seed(0)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(1, 64, batch_first=True)
        self.out = nn.Linear(64, 2)

    def forward(self, x):
        steps, _ = self.rnn(x)
        return self.out(steps.mean(1))


model = Model()
"""
    + PLAIN_LOOP
)
#: The sequence figure's reference.
PLAIN_WORDS = "a plain PyTorch loop, the same nn.LSTM(1, 64) and head, torch's threads"
#: torch's default thread count (one per core), which ``task.threads`` is set to for
#: the information line: the loop's own cost, on the plain loop's threads.
CORES = os.cpu_count() or 1
#: The epochs of the two runs whose difference gives the cost of one epoch: 600
#: epochs (about 5 s) against a start-up of about 4 s that varies by a second.
SEQUENCE_EPOCHS = (20, 620)
SEQUENCE_ARGS = [
    "task=train",
    "model=lstm",
    "data=ucr",
    "data.dataset=GunPoint",
    "task.batch_size=64",
]


def sequence_speed(repeats: int) -> list[Figure]:
    """Issue 23: the marginal cost of one epoch, ``(loop at 620 epochs - at 20) /
    600``, of ``run.py task=train model=lstm data=ucr data.dataset=GunPoint`` against
    a plain PyTorch loop with the same nn.LSTM and head (torch's threads, and one
    thread for information), whole processes started in turn. Each process times its
    own training loop (``train.seconds`` of metrics.json; the plain script's
    ``seconds``): an interpreter's start-up (about 4 s, varying by a second) would
    add up to 1.7 ms to a 600-epoch difference. The processes' wall and CPU time are
    kept beside it."""
    with tempfile.TemporaryDirectory() as folder:

        def loop_seconds(name: str) -> float:
            """The loop's wall time that run ``name`` wrote; its file is removed, so
            that the next run's is not mistaken for it."""
            ours = Path(folder) / name / "metrics.json"
            written = ours if ours.exists() else Path(folder) / f"{name}.json"
            report = json.loads(written.read_text())
            written.unlink()
            return float(
                report["train"]["seconds"] if written == ours else report["seconds"]
            )

        scripts = {}
        for side, one in (("plain", False), ("plain1", True)):
            scripts[side] = Path(folder) / f"{side}_lstm.py"
            scripts[side].write_text(f"ONE_THREAD = {one}\n" + PLAIN_LSTM)
        commands: dict[str, list[str]] = {}
        for epochs in SEQUENCE_EPOCHS:
            for side, extra in (("ours", []), ("ours_n", [f"task.threads={CORES}"])):
                commands[f"{side}{epochs}"] = [
                    PYTHON, RUN_PY, *SEQUENCE_ARGS, f"task.epochs={epochs}", *extra,
                    f"hydra.run.dir={Path(folder) / f'{side}{epochs}'}",
                ]  # fmt: skip
            for side, script in scripts.items():
                out = Path(folder) / f"{side}{epochs}.json"
                commands[f"{side}{epochs}"] = [
                    PYTHON,
                    str(script),
                    str(epochs),
                    str(out),
                ]
        samples = process_rotation(commands, repeats, loop=loop_seconds)
    span = SEQUENCE_EPOCHS[1] - SEQUENCE_EPOCHS[0]

    def per_epoch(side: str, field: str = "loop") -> float:
        return marginal_epoch_ms(samples, side, SEQUENCE_EPOCHS, field)

    what = "`run.py " + " ".join(SEQUENCE_ARGS) + "`"
    return [
        Figure(
            f"lstm epoch{name} vs {side}",
            f"{what}{args} vs {words}, GunPoint 40/10 rows of 150 steps: (the "
            f"training loop's wall time at {SEQUENCE_EPOCHS[1]} epochs - at "
            f"{SEQUENCE_EPOCHS[0]}) / {span}, as each process times it",
            per_epoch(ours),
            per_epoch(side),
            "ms",
            target,
            {
                "process_wall_ms": per_epoch(ours, "wall"),
                "reference_process_wall_ms": per_epoch(side, "wall"),
                "cpu_ms": per_epoch(ours, "cpu"),
                "reference_cpu_ms": per_epoch(side, "cpu"),
            },
        )
        for ours, name, args, side, target, words in (
            ("ours", "", "", "plain", 1.0, PLAIN_WORDS),
            ("ours", "", "", "plain1", None, "the same plain loop on one torch thread"),
            (
                "ours_n", f" on {CORES} threads", f" task.threads={CORES}", "plain",
                None, PLAIN_WORDS,
            ),
        )
    ]  # fmt: skip


#: The sweep sizes whose difference gives the cost of one more job.
SWEEP_JOBS = (2, 40)


def sweep_overhead(repeats: int) -> Figure:
    """Issue 12's per-job cost of a sweep: ``(wall of a 40-job model=demo sweep -
    wall of a 2-job one) / 38``, whole processes, against the time of ``import torch``
    in a fresh process (the unit the target is written in)."""
    with tempfile.TemporaryDirectory() as folder:
        commands = {
            f"sweep{jobs}": [
                PYTHON,
                RUN_PY,
                "-m",
                "model=demo",
                f"seed=range(0,{jobs})",
                f"hydra.sweep.dir={Path(folder) / str(jobs)}",
            ]
            for jobs in SWEEP_JOBS
        }
        commands["torch"] = [PYTHON, "-c", "import torch"]
        samples = process_rotation(commands, repeats)
    small, large = (samples[f"sweep{jobs}"] for jobs in SWEEP_JOBS)
    extra = SWEEP_JOBS[1] - SWEEP_JOBS[0]
    per_job = (large.wall - small.wall) / extra
    return Figure(
        "sweep: cost per extra job",
        f"run.py -m model=demo seed=range(0,N): (wall at N={SWEEP_JOBS[1]} - at "
        f"N={SWEEP_JOBS[0]}) / {extra}, against python -c 'import torch'",
        per_job * 1e3,
        samples["torch"].wall * 1e3,
        "ms",
        0.06,  # issue 20: one public load_sweep_config + run_job per job
        {
            "cpu_per_job_ms": (large.cpu - small.cpu) / extra * 1e3,
            "import_torch_cpu_ms": samples["torch"].cpu * 1e3,
        },
    )


def compiled(repeats: int) -> Figure:
    import torch

    import annfactory

    torch.set_num_threads(2)
    cfg = annfactory.compose(
        ["model=mlp", "model.in_features=512", "model.width=512", "model.depth=4"]
    )
    model = annfactory.build_model(cfg).eval()
    x = torch.randn(256, 512)
    start = time.perf_counter()
    fast = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x))
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        ours, reference = interleaved(
            timed(lambda: fast(x), 50), timed(lambda: model(x), 50), repeats * 2
        )
    return Figure(
        "torch.compile forward",
        "compile=true: model=mlp 4 x 512, batch 256, compiled vs eager, 2 threads",
        ours * 1e3,
        reference * 1e3,
        "ms",
        None,
        {"compile_s": compile_s},
    )


#: The table benchmark's CSV has this many rows unless --table-rows says otherwise.
TABLE_ROWS = 1_000_000
TABLE_ARGS = [
    "task=train",
    "model=mlp",
    "data=csv",
    "data.target=label",
    "task.epochs=1",
    "task.batch_size=1024",
]


def _bench_table() -> Any:
    """scripts/bench_table.py as a module (this file may be loaded from elsewhere)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_table", REPO / "scripts" / "bench_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_commands(csv: Path, folder: Path) -> dict[str, list[str]]:
    """Issue 21's two sides on ``csv``: ``run.py task=train`` on it, and the pandas
    script a user would write (scripts/bench_table.py's PANDAS_BASELINE), which
    writes its validation accuracy to ``folder/baseline.txt``."""
    return {
        "ours": [
            PYTHON,
            RUN_PY,
            *TABLE_ARGS,
            f"data.path={csv}",
            f"hydra.run.dir={folder / 'run'}",
        ],
        "reference": [
            PYTHON,
            str(REPO / "scripts" / "bench_table.py"),
            "baseline",
            str(csv),
            "--accuracy-file",
            str(folder / "baseline.txt"),
        ],
    }


def table_train(repeats: int, rows: int = TABLE_ROWS) -> list[Figure]:
    """Issue 21's speed and memory: ``run.py task=train model=mlp task.epochs=1
    task.batch_size=1024`` on the benchmark's CSV (``rows`` rows: 20 numeric columns
    with 1% empty cells, 2 text columns, a 3-class text target; about 200 MB at a
    million) against pandas + the same MLP by hand, whole processes started in turn
    with ``OMP_NUM_THREADS=1``: wall time and peak RSS, each at most 1.0x."""
    bench_table = _bench_table()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        csv = bench_table.make_table_csv(folder / "table.csv", rows)
        size_mib = csv.stat().st_size / 2**20
        commands = table_commands(csv, folder)
        samples = process_rotation(commands, repeats, env)
        metrics = json.loads((folder / "run" / "metrics.json").read_text())
        accuracy = {
            "val_accuracy": metrics["train"]["val_accuracy"],
            "reference_val_accuracy": float((folder / "baseline.txt").read_text()),
        }
    ours, reference = samples["ours"], samples["reference"]
    what = (
        f"`run.py {' '.join(TABLE_ARGS)}` vs pandas read_csv + get_dummies + "
        f"fillna(median) + standardize + the same MLP by hand, {rows:,} rows "
        f"({size_mib:.0f} MiB CSV), OMP_NUM_THREADS=1"
    )
    cpu = {"cpu_s": ours.cpu, "reference_cpu_s": reference.cpu}
    return [
        Figure("table train", what, ours.wall, reference.wall, "s", 1.0,
               {**cpu, **accuracy, "rows": rows}),
        Figure("table train: peak RSS", what + ": /proc VmHWM",
               ours.peak / 2**20, reference.peak / 2**20, "MiB", 1.0,
               {"rows": rows}),
    ]  # fmt: skip


#: Issue 22: the default recipe's epochs, with checkpoints and without.
CHECKPOINT_ARGS = ["task=train", "model=mlp", "data=digits", "task.epochs=150"]


def checkpoint_cost(repeats: int) -> list[Figure]:
    """Issue 22: the cost of checkpoints on the default recipe (``model=mlp
    data=digits``), in this process through the train task with a run directory:
    the training loop's wall time per epoch with the default policy (a checkpoint
    at an epoch's end, at most one every ``task.checkpoint_seconds=2``) against
    none (``task.checkpoint_every=0``: only on a signal), interleaved; and, for
    information, one at every epoch's end (``task.checkpoint_seconds=0``)."""
    from omegaconf import OmegaConf

    import annfactory
    from annfactory.files import to_yaml
    from annfactory.tasks import run_named_task

    def side(*options: str) -> Callable[[], float]:
        cfg = annfactory.compose([*CHECKPOINT_ARGS, *options])
        spec = annfactory.to_spec(cfg)
        node = OmegaConf.to_container(cfg.task, resolve=True)
        record = {".hydra/config.yaml": to_yaml(cfg)}

        def measure() -> float:
            with tempfile.TemporaryDirectory() as folder:
                metrics = run_named_task(
                    node, spec, Path(folder) / "run", out=io.StringIO(), record=record
                )
            train = metrics["train"]
            return float(train["seconds"]) / len(train["history"]) * 1e3

        return measure

    default, off = side(), side("task.checkpoint_every=0")
    every = side("task.checkpoint_seconds=0")
    on_ms, off_ms = interleaved(default, off, repeats)
    every_ms, off_again = interleaved(every, off, repeats)
    what = "`run.py " + " ".join(CHECKPOINT_ARGS) + "`, the loop's wall time per epoch"
    return [
        Figure("checkpoints: default policy", what + " (every epoch, at most one "
               "every 2 s) vs task.checkpoint_every=0", on_ms, off_ms, "ms", 1.10),
        Figure("checkpoints: every epoch", what + " with task.checkpoint_seconds=0 "
               "vs task.checkpoint_every=0", every_ms, off_again, "ms", None),
    ]  # fmt: skip


FIGURES: dict[str, Callable[[int], Figure | list[Figure]]] = {
    "small_forward": small_forward,
    "large_forward": large_forward,
    "build": build,
    "peak_memory": peak_memory,
    "dry_run": dry_run,
    "config_only": config_only,
    "end_to_end": end_to_end,
    "train": train_speed,
    "sweep": sweep_overhead,
    "table": table_train,
    "checkpoint": checkpoint_cost,
    "sequence": sequence_speed,
}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


#: A figure's extras printed as lines of information below the table: its key (the
#: reference's is ``reference_<key>``), what it measures, its unit.
INFORMATION_RATIOS = (
    ("cpu_s", "CPU time", "s"),
    ("process_wall_ms", "whole processes' wall", "ms"),
    ("cpu_ms", "CPU time", "ms"),
)


def table(figures: list[Figure]) -> str:
    lines = [
        "| figure | annfactory | reference | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        target = "—" if f.target is None else f"≤ {f.target:.2f}x"
        met = "—" if f.ok is None else ("yes" if f.ok else "NO")
        lines.append(
            f"| {f.name} | {f.ours:.4g} {f.unit} | {f.reference:.4g} {f.unit} | "
            f"{f.ratio:.2f}x | {target} | {met} |"
        )
    for f in figures:
        if "peak_rss_mib" in f.extra:
            peak = f.extra["peak_rss_mib"]
            limit = f.extra["peak_rss_target_mib"]
            lines.append(
                f"| {f.name}: peak RSS | {peak:.0f} MiB | — | — | < {limit} MiB | "
                f"{'yes' if peak < limit else 'NO'} |"
            )
        for key, label, unit in INFORMATION_RATIOS:
            if key in f.extra:
                ours, reference = f.extra[key], f.extra[f"reference_{key}"]
                lines.append(
                    f"| {f.name}: {label} | {ours:.4g} {unit} | {reference:.4g} "
                    f"{unit} | {ours / reference:.2f}x | — | — |"
                )
        if "accuracy" in f.extra:
            ours, reference = f.extra["accuracy"], f.extra["reference_accuracy"]
            lines.append(
                f"| {f.name}: val accuracy at {TRAIN_EPOCHS[1]} epochs | {ours:.4f} | "
                f"{reference:.4f} | — | — | — |"
            )
        if "val_accuracy" in f.extra:
            ours, reference = f.extra["val_accuracy"], f.extra["reference_val_accuracy"]
            lines.append(
                f"| {f.name}: val accuracy after 1 epoch | {ours:.4f} | "
                f"{reference:.4f} | — | — | — |"
            )
        if "compile_s" in f.extra:
            seconds = f.extra["compile_s"]
            lines.append(
                f"| {f.name}: compile time | {seconds:.1f} s | — | — | — | — |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, help="repeats (default 5, --quick 3)")
    parser.add_argument("--only", help="comma-separated figures: " + ",".join(FIGURES))
    parser.add_argument("--compile", action="store_true", help="add torch.compile")
    parser.add_argument("--out", default="bench.json", help="JSON output file")
    parser.add_argument(
        "--table-rows",
        type=int,
        default=TABLE_ROWS,
        help=f"rows of the table figure's CSV (default {TABLE_ROWS:,})",
    )
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    names = args.only.split(",") if args.only else list(FIGURES)
    unknown = [name for name in names if name not in FIGURES and name != "compile"]
    if unknown:
        parser.error(f"unknown figures {unknown}; choose from {', '.join(FIGURES)}")

    def table_of_rows(repeats: int) -> list[Figure]:
        return table_train(repeats, args.table_rows)

    figures_now = {**FIGURES, "table": table_of_rows}
    selected = [(name, figures_now[name]) for name in names if name in FIGURES]
    if args.compile or "compile" in names:
        selected.append(("compile", compiled))
    # Bytecode for the package's own sources, as an installed package has: where
    # PYTHONDONTWRITEBYTECODE is set, every started process would compile them again
    # (about 0.1 s), which the plain scripts it is compared with hardly pay.
    compileall.compile_dir(REPO / "src", quiet=1)
    figures = []
    for name, measure in selected:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        measured = measure(repeats)
        figures.extend(measured if isinstance(measured, list) else [measured])
    print(table(figures))
    import torch

    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "repeats": repeats,
        "figures": [{**asdict(f), "ratio": f.ratio, "ok": f.ok} for f in figures],
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0 if all(f.ok is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
