"""The capstone grader: the reference network passes, and each typical assembly mistake fails naming
its cause; the training check passes a correct network and fails one that cannot learn."""

from __future__ import annotations

import ast

import pytest
import torch
from torch import nn

from autograder import grade
from autograder.digits import check_training, load_digits_split
from tests.conftest import ROOT, assert_fails_naming, assert_passes, solution_classes
from tools.nbbuild import definitions, solution_source

S = solution_classes("capstone")
Sequential, SimpleCNN = S["Sequential"], S["SimpleCNN"]
Conv2d, ReLU, MaxPool2d, Flatten, Linear = (S[n] for n in ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"))
LAYER_CHAPTERS = {"Conv2d": "conv", "ReLU": "activations", "MaxPool2d": "pooling", "Flatten": "flatten",
                  "Linear": "linear"}


def test_the_reference_passes_the_public_and_hidden_suites():
    assert_passes("SimpleCNN", SimpleCNN, 4)


def test_the_pasted_layers_are_the_chapters_reference_solutions():
    """The capstone's layer cell is the code of the chapters' solutions: edit a chapter's solution,
    regenerate the capstone's layer cell too."""
    sources = [solution_source(ROOT / "solutions" / c / f"{c}.ipynb") for c in LAYER_CHAPTERS.values()]
    expected = definitions(sources, list(LAYER_CHAPTERS))
    pasted = solution_source(ROOT / "solutions" / "capstone" / "capstone.ipynb")
    tree = ast.parse(pasted)
    top = [n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)]
    assert expected in pasted
    for name in LAYER_CHAPTERS:
        assert name in top


def _layers(image_size=8, in_channels=1, num_classes=10, **swap):
    side = image_size // 4
    layers = {0: Conv2d(in_channels, 16, kernel_size=3, padding=1), 1: ReLU(), 2: MaxPool2d(2),
              3: Conv2d(16, 32, kernel_size=3, padding=1), 4: ReLU(), 5: MaxPool2d(2), 6: Flatten(),
              7: Linear(32 * side * side, 128), 8: ReLU(), 9: Linear(128, num_classes)}
    layers.update({int(k[1:]): v for k, v in swap.items()})
    return [layers[i] for i in sorted(layers) if layers[i] is not None]


class TorchSequential(nn.Sequential):
    """Inherits nn.Sequential instead of writing its own."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__(*_layers(image_size, in_channels, num_classes))


class TorchLayersInside(Sequential):
    """torch's layers in the student's Sequential."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        side = image_size // 4
        super().__init__(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * side * side, 128), nn.ReLU(), nn.Linear(128, num_classes))


class ListSequential(nn.Module):
    """Keeps its layers in a plain Python list: they are not registered, the network has no parameters."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__()
        self.layers = _layers(image_size, in_channels, num_classes)

    def forward(self, input):
        for layer in self.layers:
            input = layer(input)
        return input


class NamedChildren(nn.Module):
    """Registers the layers under names of its own: state keys conv1.weight, ... instead of 0.weight."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__()
        for name, layer in zip(["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3",
                                "fc2"], _layers(image_size, in_channels, num_classes)):
            self.add_module(name, layer)

    def forward(self, input):
        for layer in self.children():
            input = layer(input)
        return input


class FlattenedSizeForgotPooling(Sequential):
    """Linear(32 * image_size**2, 128): the head sized as if no pooling had shrunk the maps."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__(*_layers(image_size, in_channels, num_classes,
                                  l7=Linear(32 * image_size * image_size, 128)))


class MissingReLU(Sequential):
    """No ReLU between the two linear layers: the head collapses into one linear map."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__(*_layers(image_size, in_channels, num_classes, l8=None))


class NoPadding(Sequential):
    """Convolutions without padding: 8x8 shrinks to 6x6, the head no longer fits."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        super().__init__(*_layers(image_size, in_channels, num_classes, l0=Conv2d(in_channels, 16, 3),
                                  l3=Conv2d(16, 32, 3)))


class ReversedForward(SimpleCNN):
    """Runs the layers last to first."""

    def forward(self, input):
        for layer in reversed(list(self._modules.values())):
            input = layer(input)
        return input


class AveragePooling(Sequential):
    """Average pooling where the network max-pools: same shapes, other values."""

    def __init__(self, in_channels=1, num_classes=10, image_size=8):
        class AvgPool(nn.Module):
            def forward(self, input):
                n, c, h, w = input.shape
                return input.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))

        super().__init__(*_layers(image_size, in_channels, num_classes, l2=AvgPool(), l5=AvgPool()))


class DetachedHead(SimpleCNN):
    """Cuts the graph before the head: the convolutions get no gradient."""

    def forward(self, input):
        for index, layer in enumerate(self._modules.values()):
            input = layer(input.detach() if index == 7 else input)
        return input


class SampleLoop(SimpleCNN):
    """Runs the network image by image."""

    def forward(self, input):
        return torch.cat([super(SampleLoop, self).forward(image[None]) for image in input])


WRONG = [
    # (network, the part that must fail, words the failure must contain)
    (TorchSequential, "rules", "inherits from torch's Sequential"),
    (TorchLayersInside, "rules", "torch.nn.modules.conv.Conv2d"),
    (ListSequential, "state", "registers no parameters at all (self.layers is a plain Python container)"),
    (NamedChildren, "state", "registered under other names (expected '0.weight', not 'conv1.weight')"),
    (FlattenedSizeForgotPooling, "state", "7.weight"),
    (MissingReLU, "state", "numbered differently from torch's: is a layer missing or extra"),
    (NoPadding, "shape", "raised RuntimeError"),
    (ReversedForward, "shape", "raised"),
    (AveragePooling, "forward", "output values differ"),
    (DetachedHead, "backward", "0.weight"),
    (SampleLoop, "rules", "loop"),
]


@pytest.mark.parametrize("network, part, cause", WRONG, ids=[f"{w[0].__name__}-{w[1]}" for w in WRONG])
def test_a_wrong_network_fails_naming_the_cause(network, part, cause):
    assert_fails_naming(grade("SimpleCNN", network), part, cause)


def test_training_a_network_that_cannot_learn_fails_with_a_hint(capsys):
    with pytest.raises(AssertionError, match=r"test accuracy .* below the 90% .* backward pass"):
        check_training(DetachedHead, epochs=1, min_accuracy=0.9)
    with pytest.raises(AssertionError, match="training could not run: the model raised RuntimeError"):
        check_training(NoPadding, epochs=1)
    assert capsys.readouterr().err == ""


def test_the_digits_ship_with_scikit_learn_and_split_without_overlap():
    x_train, y_train, x_test, y_test = load_digits_split()
    assert x_train.shape[1:] == (1, 8, 8) and len(x_train) + len(x_test) == 1797
    assert 0 <= x_train.min() and x_train.max() <= 1
    assert set(y_test.tolist()) == set(range(10))
    train_rows = {tuple(r) for r in x_train.flatten(1).tolist()}
    assert sum(tuple(r) in train_rows for r in x_test.flatten(1).tolist()) < 0.05 * len(x_test)
