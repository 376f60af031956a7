"""Every seeded draw of a run: one named stream of the run seed per thing drawn.

A run has one seed (``seed=``). Each thing it draws gets its own CPU generator,
seeded from ``(seed, stream name)`` by :func:`parameter_seed`:

- each parameter, under its state_dict path (``linear1.weight``);
- the random input batch, under ``input`` (:func:`random_input`);
- the random class labels, under ``labels`` (:func:`random_labels`);
- with ``task=train``: the data split (``data.split``), the shuffle of each epoch's
  batches (``train.shuffle``) and dropout's draws (``train.dropout``,
  :data:`DROPOUT_STREAM`: the training loop seeds torch's global generator, which
  dropout draws from, with it for the loop and restores it afterwards).

Parameter paths always hold a dot, so they never collide with the other streams.
Drawing one thing never moves another's generator, so adding a layer or a draw
leaves every other value as it was, and values are drawn on the CPU in
:func:`sampling_dtype`, so they do not depend on the device. These values are a
promise across releases: ``tests/test_factory.py`` pins :func:`parameter_seed` and
``tests/fixtures/runs/`` holds runs saved by earlier releases.

"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from annfactory.layouts import IDS, layout_of

if TYPE_CHECKING:
    import torch

    from annfactory.spec import RunSpec

__all__ = [
    "DROPOUT_STREAM",
    "INPUT_STREAM",
    "LABELS_STREAM",
    "parameter_seed",
    "random_input",
    "random_labels",
    "sampling_dtype",
    "seeded_generator",
]

#: The stream of the random input batch.
INPUT_STREAM = "input"
#: The stream of the random class labels.
LABELS_STREAM = "labels"
#: The stream of dropout's draws while training (the seed of torch's global
#: generator during the training loop).
DROPOUT_STREAM = "train.dropout"


def parameter_seed(seed: int, path: str) -> int:
    """The seed of one parameter's generator, from the run seed and its path.

    Stable across processes, platforms and Python versions (unlike ``hash``).
    """
    digest = hashlib.blake2b(f"{seed}:{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seeded_generator(seed: int, path: str) -> torch.Generator:
    """A CPU generator for one named draw of a run (a parameter, the input, labels)."""
    import torch  # here, not at the top: task modules import this one

    return torch.Generator().manual_seed(parameter_seed(seed, path))


def sampling_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype random values are drawn in: float64 for float64 runs, else float32.

    Drawing on the CPU in one of these makes values independent of the device, and
    gives half-precision runs the float32 draws, rounded.
    """
    import torch  # here, not at the top: task modules import this one

    return torch.float64 if dtype == torch.float64 else torch.float32


def random_input(
    spec: RunSpec, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The run's random batch, ``[batch_size, *input_shape]`` from N(0, 1), seeded
    from ``(seed, "input")`` and sampled on the CPU like the parameters; for a
    network that starts with an embedding, integer ids in ``[0, num_embeddings)``
    (int64, whatever ``dtype``)."""
    import torch  # here, not at the top: task modules import this one

    shape = (spec.batch_size, *spec.network.input_shape)
    ids = input_ids(spec)
    if ids is not None:
        dtype = torch.int64
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    generator = seeded_generator(spec.seed, INPUT_STREAM)
    if ids is not None:
        return torch.randint(0, ids, shape, generator=generator).to(device)
    x = torch.randn(shape, generator=generator, dtype=sampling_dtype(dtype))
    return x.to(device=device, dtype=dtype)


def input_ids(spec: RunSpec) -> int | None:
    """How many ids the network's input takes (``num_embeddings`` of its first
    layer, an embedding), or None for an input of numbers."""
    first = spec.network.layers[0]
    if layout_of(spec.network.input_shape) != IDS or first.type != "embedding":
        return None
    return int(first.options["num_embeddings"])


def random_labels(spec: RunSpec, rows: int, device: torch.device) -> torch.Tensor:
    """Random class labels in ``[0, out_features)``, one per row, seeded from
    ``(seed, "labels")`` and drawn on the CPU like the input."""
    import torch  # here, not at the top: task modules import this one

    generator = seeded_generator(spec.seed, LABELS_STREAM)
    labels = torch.randint(0, spec.network.out_features, (rows,), generator=generator)
    return labels.to(device)
