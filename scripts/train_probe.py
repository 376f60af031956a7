"""Probe: annfactory's training loop against a plain PyTorch loop, in one process.

Trains the mlp 64-32-32-10 on scikit-learn's digits (1437 train / 360 validation
rows, standardized on the training split) with Adam, batch 64, and prints ms/epoch
of both, interleaved, with each one's validation accuracy:

    PYTHONPATH=src python scripts/train_probe.py --epochs 30 --repeats 3

A tool to see what a change to annfactory.training gains. With ``--side ours --out
FILE`` it trains once and writes the validation accuracy as JSON: scripts/bench.py's
``train`` figure runs that as annfactory's side until ``task=train`` exists.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.nn import functional

import annfactory
from annfactory.optimizers import build_optimizer, parse_optimizer
from annfactory.training import train

TRAIN_ROWS = 1437


def digits() -> tuple[torch.Tensor, ...]:
    """Digits split 1437 / 360 by a seeded permutation, standardized on train."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    mean, std = x[:TRAIN_ROWS].mean(0), x[:TRAIN_ROWS].std(0)
    std[std == 0] = 1
    x = (x - mean) / std
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y)
    return xt[:TRAIN_ROWS], yt[:TRAIN_ROWS], xt[TRAIN_ROWS:], yt[TRAIN_ROWS:]


def network(seed: int = 0, width: int = 32, depth: int = 2) -> Any:
    cfg = {
        "seed": seed,
        "model": {
            "type": "mlp",
            "in_features": 64,
            "out_features": 10,
            "depth": depth,
            "width": width,
        },
    }
    return annfactory.build_model(cfg)


def ours(
    epochs: int,
    data: tuple[torch.Tensor, ...],
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 32,
    depth: int = 2,
    optimizer: str = "adam",
    batch_size: int = 64,
) -> float:
    net = network(seed, width, depth)
    spec = parse_optimizer({"name": optimizer, "lr": lr})
    opt = build_optimizer(spec, net.parameters(), torch.device("cpu"))
    result = train(
        logits=net,
        module=net,
        loss=functional.cross_entropy,
        metric="accuracy",
        optimizer=opt,
        schedule=None,
        x_train=data[0],
        y_train=data[1],
        x_val=data[2],
        y_val=data[3],
        epochs=epochs,
        batch_size=batch_size,
        patience=None,
        keep="last",
        generator=torch.Generator().manual_seed(seed),
    )
    return result.history[-1].metric


def plain(epochs: int, data: tuple[torch.Tensor, ...]) -> float:
    """The issue's reference: default Adam, loss.item() every step, validation
    every epoch."""
    xt, yt, xv, yv = data
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    accuracy = 0.0
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for start in range(0, len(xt), 64):
            index = perm[start : start + 64]
            opt.zero_grad()
            loss = functional.cross_entropy(net(xt[index]), yt[index])
            loss.backward()
            opt.step()
            loss.item()
        net.eval()
        with torch.no_grad():
            out = net(xv)
            functional.cross_entropy(out, yv).item()
            accuracy = (out.argmax(1) == yv).float().mean().item()
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=("ours", "plain"), help="train one side once")
    parser.add_argument("--out", help="with --side: write its accuracy here (JSON)")
    args = parser.parse_args()
    data = digits()
    if args.side:
        accuracy = (ours if args.side == "ours" else plain)(args.epochs, data)
        if args.out:
            with open(args.out, "w") as file:
                json.dump({"val_accuracy": accuracy}, file)
        return
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    accuracy = {}
    sides = {"ours": ours, "plain": plain}
    for repeat in range(args.repeats):
        names = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in names:
            start = time.perf_counter()
            accuracy[name] = sides[name](args.epochs, data)
            times[name].append((time.perf_counter() - start) / args.epochs * 1e3)
    for name, values in times.items():
        print(
            f"{name:6s} {statistics.median(values):7.2f} ms/epoch  "
            f"accuracy {accuracy[name]:.4f}"
        )


if __name__ == "__main__":
    main()
