"""Training on scikit-learn's bundled 8x8 digits: the capstone's proof that a network works.

The data ships with scikit-learn (1,797 images, nothing downloaded). `train` is a plain
mini-batch loop with Adam and cross-entropy; `check_training` trains a fresh model with a fixed
seed and fails, like `check`, with a readable message if the test accuracy stays below a bound.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .engine import raised


@dataclass
class History:
    """What a training run produced."""

    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    accuracies: list[float] = field(default_factory=list)  # test accuracy after each epoch
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.accuracies[-1] if self.accuracies else 0.0


def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) scaled to [0, 1], labels (N,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.long)  # (1797,)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(model: nn.Module, epochs: int = 10, lr: float = 1e-2, batch_size: int = 64, seed: int = 0,
          progress: bool = False) -> History:
    """Train `model` on the digits with Adam and cross-entropy; test accuracy after every epoch."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    start = time.perf_counter()
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="training", unit="epoch")
    for _ in epochs_iter:
        model.train()
        order = torch.randperm(len(y_train))
        total = 0.0
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.losses.append(total / len(order))
        history.accuracies.append(accuracy(model, x_test, y_test))
        if progress:
            epochs_iter.set_postfix(loss=f"{history.losses[-1]:.3f}", accuracy=f"{history.accuracies[-1]:.3f}")
    history.seconds = time.perf_counter() - start
    return history


def check_training(make_model: Callable[[], nn.Module], *, min_accuracy: float = 0.9, epochs: int = 10,
                   seed: int = 0) -> History:
    """Train a fresh `make_model()` with a fixed seed; raise AssertionError unless the test accuracy
    reaches `min_accuracy`. Writes nothing to stderr (nbgrader-safe)."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        try:
            model = make_model()
            history = train(model, epochs=epochs, seed=seed)
        except Exception as exc:  # noqa: BLE001 - the student's fault becomes the message
            raise AssertionError(f"training could not run: the model {raised(exc)}") from None
    line = (f"test accuracy {history.accuracy:.1%} after {epochs} epochs in {history.seconds:.1f} s "
            f"(final training loss {history.losses[-1]:.3f})")
    if not history.accuracy >= min_accuracy:
        raise AssertionError(f"{line}: below the {min_accuracy:.0%} a correct network reaches. A loss that does "
                             "not fall points at the backward pass; one that falls while accuracy stays low, "
                             "at the forward pass in eval mode")
    print(f"passed: {line}")
    return history
