"""The table benchmark of issue 21: a 1,000,000-row CSV as users have them, and the
script a user would write by hand to train on it with pandas and PyTorch.

    python scripts/bench_table.py make /tmp/table.csv            # about 230 MB
    python scripts/bench_table.py baseline /tmp/table.csv        # the pandas script

The file: 20 numeric columns with 1% empty cells, 2 text columns of 5 levels each,
and a 3-class text target that depends on both. ``scripts/bench.py`` times
``task=train model=mlp task.epochs=1 task.batch_size=1024`` on it against
:data:`PANDAS_BASELINE`, both as whole processes, interleaved, with
``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The file's shape.
ROWS = 1_000_000
NUMERIC = 20
TEXT_LEVELS = ("alpha", "beta", "gamma", "delta", "epsilon")
CLASSES = ("low", "mid", "high")
MISSING_SHARE = 0.01

#: The script a user would write by hand: pandas reads and prepares the table
#: (one-hot text columns, median-filled and standardized numbers, on a stratified-ish
#: 80/20 split fitted on the training rows), then the same MLP (N-32-32-3, Adam,
#: batch 1024) trains one epoch and scores the validation rows.
PANDAS_BASELINE = """
import sys
import numpy as np
import pandas as pd
import torch

torch.manual_seed(0)
frame = pd.read_csv(sys.argv[1])
target = frame.pop("label").astype("category")
classes = target.cat.categories
y = torch.tensor(target.cat.codes.to_numpy(), dtype=torch.long)
frame = pd.get_dummies(frame, columns=["color", "shape"], dtype=np.float32)
order = np.random.default_rng(0).permutation(len(frame))
split = int(len(frame) * 0.8)
train_rows, val_rows = order[:split], order[split:]
numeric = [c for c in frame.columns if c.startswith("x")]
medians = frame.iloc[train_rows][numeric].median()
frame[numeric] = frame[numeric].fillna(medians)
means = frame.iloc[train_rows][numeric].mean()
stds = frame.iloc[train_rows][numeric].std().replace(0, 1)
frame[numeric] = (frame[numeric] - means) / stds
x = torch.tensor(frame.to_numpy(dtype=np.float32))
model = torch.nn.Sequential(
    torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(),
    torch.nn.Linear(32, 32), torch.nn.ReLU(),
    torch.nn.Linear(32, len(classes)),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_function = torch.nn.CrossEntropyLoss()
x_train, y_train = x[train_rows], y[train_rows]
shuffled = torch.randperm(len(x_train))
for start in range(0, len(x_train), 1024):
    batch = shuffled[start:start + 1024]
    optimizer.zero_grad()
    loss = loss_function(model(x_train[batch]), y_train[batch])
    loss.backward()
    optimizer.step()
with torch.no_grad():
    logits = model(x[val_rows])
    accuracy = (logits.argmax(1) == y[val_rows]).float().mean().item()
print(f"val_accuracy {accuracy:.4f}")
if len(sys.argv) > 2:  # where scripts/bench.py reads it
    with open(sys.argv[2], "w") as file:
        print(accuracy, file=file)
"""


def make_table_csv(path: Path, rows: int = ROWS, seed: int = 0) -> Path:
    """Write the benchmark's CSV (columns ``x01..x20``, ``color``, ``shape``,
    ``label``): Arrow's writer, from whole arrays."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, NUMERIC))
    color = rng.integers(0, len(TEXT_LEVELS), rows)
    shape = rng.integers(0, len(TEXT_LEVELS), rows)
    score = numbers[:, 0] + 0.5 * numbers[:, 1] - 0.3 * color + 0.2 * shape
    label = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    columns: dict[str, pa.Array] = {}
    for index in range(NUMERIC):
        column = np.round(numbers[:, index], 6)
        missing = rng.random(rows) < MISSING_SHARE
        columns[f"x{index + 1:02d}"] = pa.array(column, mask=missing)
    levels = pa.array(TEXT_LEVELS)
    columns["color"] = levels.take(pa.array(color))
    columns["shape"] = levels.take(pa.array(shape))
    columns["label"] = pa.array(CLASSES).take(pa.array(label))
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table(columns), path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write the benchmark's CSV")
    make.add_argument("path", type=Path)
    make.add_argument("--rows", type=int, default=ROWS)
    baseline = commands.add_parser("baseline", help="run the pandas script on a CSV")
    baseline.add_argument("path", type=Path)
    baseline.add_argument(
        "--accuracy-file", type=Path, help="also write the validation accuracy here"
    )
    args = parser.parse_args()
    if args.command == "make":
        written = make_table_csv(args.path, args.rows)
        print(f"{written}: {written.stat().st_size / 2**20:.0f} MiB")
        return 0
    sys.argv = ["baseline", str(args.path)]
    if args.accuracy_file is not None:
        sys.argv.append(str(args.accuracy_file))
    exec(
        compile(PANDAS_BASELINE, "<pandas baseline>", "exec"), {"__name__": "__main__"}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
