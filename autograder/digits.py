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


def _epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, batch_size: int,
            seed: int):
    """Mini-batch Adam on cross-entropy, seeded; yields the mean training loss after each epoch."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y))
        total = 0.0
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        yield total / len(order)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 10, lr: float = 1e-2,
        batch_size: int = 64, seed: int = 0) -> list[float]:
    """Train `model` in place on (x, y); the mean training loss of each epoch. This is what runs on the
    student's side; the accuracy is measured by the grader (`judge_training`)."""
    return list(_epochs(model, x, y, epochs, lr, batch_size, seed))


def train(model: nn.Module, epochs: int = 10, lr: float = 1e-2, batch_size: int = 64, seed: int = 0,
          progress: bool = False) -> History:
    """Train `model` on the digits with Adam and cross-entropy; test accuracy after every epoch."""
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed)
    history = History()
    start = time.perf_counter()
    losses = _epochs(model, x_train, y_train, epochs, lr, batch_size, seed)
    if progress:
        from tqdm.auto import tqdm

        losses = tqdm(losses, total=epochs, desc="training", unit="epoch")
    for loss in losses:
        history.losses.append(loss)
        history.accuracies.append(accuracy(model, x_test, y_test))
        if progress:
            losses.set_postfix(loss=f"{loss:.3f}", accuracy=f"{history.accuracies[-1]:.3f}")
    history.seconds = time.perf_counter() - start
    return history


def judge_training(make_model, *, min_accuracy: float = 0.9, epochs: int = 10, seed: int = 0,
                   lr: float = 1e-2, batch_size: int = 64) -> tuple[bool, str]:
    """Train a fresh student network on the student's side, then measure its test accuracy here, with
    torch's own network (`TorchSimpleCNN`) holding the trained weights: the accuracy never comes from
    the student's code. `make_model` is the student's class, or a `student.Side` reaching it.
    Returns (passed, message)."""
    from .engine import as_side
    from .specs.capstone import TorchSimpleCNN

    side = as_side(make_model)
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed)
    start = time.perf_counter()
    try:
        model = side.build((), {}, seed=seed)
        if not model.info["is_module"]:
            return False, f"training could not run: the model is a {model.info['type']}, not an nn.Module"
        trained = model.train_digits({"x": x_train, "y": y_train}, epochs=epochs, lr=lr, batch_size=batch_size,
                                     seed=seed)
    except Exception as exc:  # noqa: BLE001 - the student's fault becomes the message
        return False, f"training could not run: the model {raised(exc)}"
    seconds = time.perf_counter() - start
    network = TorchSimpleCNN()
    try:
        network.load_state_dict(trained["state"])
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return False, (f"training ran, but the trained weights do not fit torch's network ({first}): the state "
                       "part names the difference")
    losses = [float(v) for v in trained.get("losses", [])] or [float("nan")]
    score = accuracy(network, x_test, y_test)
    line = (f"test accuracy {score:.1%} after {epochs} epochs in {seconds:.1f} s "
            f"(final training loss {losses[-1]:.3f})")
    if not score >= min_accuracy:
        return False, (f"{line}: below the {min_accuracy:.0%} a correct network reaches. A loss that does not fall "
                       "points at the backward pass; one that falls while accuracy stays low, at the forward pass "
                       "in eval mode")
    return True, f"passed: {line}"


def check_training(make_model, *, min_accuracy: float = 0.9, epochs: int = 10, seed: int = 0) -> None:
    """Train a fresh `make_model()` with a fixed seed; raise AssertionError unless the test accuracy
    (measured with torch's network holding the trained weights) reaches `min_accuracy`. Writes
    nothing to stderr (nbgrader-safe)."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        ok, message = judge_training(make_model, min_accuracy=min_accuracy, epochs=epochs, seed=seed)
    if not ok:
        raise AssertionError(message)
    print(message)
