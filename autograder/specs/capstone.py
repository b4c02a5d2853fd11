"""The capstone: a small CNN assembled from the student's own layers, inside their own Sequential.

conv, ReLU, max pool, conv, ReLU, max pool, flatten, linear, ReLU, linear: the network of the
source documents (16 and 32 channels, a 128-unit hidden layer), for any input size divisible by 4.
Graded like a layer against the same network built from torch.nn, with the rules of its parts
(no torch conv, pooling, activation or linear function, no torch layer module, no nn.Sequential).
"""

from __future__ import annotations

import random

from torch import nn

from ..spec import SPECS, Case, Scale, Spec, randn, register

PARTS_OF_THE_NETWORK = ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear")


class TorchSimpleCNN(nn.Sequential):
    """The reference: the capstone network from torch.nn.

    (N, in_channels, S, S) -> (N, num_classes), S = image_size, a multiple of 4.
    State names: 0.* and 3.* (convolutions), 7.* and 9.* (linear layers).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 8):
        side = image_size // 4  # two 2x2 poolings
        super().__init__(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )


def _hidden(rng: random.Random):
    channels, classes, side = rng.choice([1, 3]), rng.randint(2, 12), 4 * rng.randint(1, 3)
    yield Case("hidden_network", (channels, classes, side), {}, randn(rng.randint(1, 4), channels, side, side))


_parts = [SPECS[name] for name in PARTS_OF_THE_NETWORK]

register(Spec(
    name="SimpleCNN",
    chapter="capstone",
    reference=TorchSimpleCNN,
    cases=(
        Case("digits", (1, 10, 8), {}, randn(4, 1, 8, 8)),  # scikit-learn's 8x8 digits
        Case("rgb_32", (3, 10, 32), {}, randn(2, 3, 32, 32)),  # the source documents' 32x32 RGB input
    ),
    hidden=_hidden,
    scales=(Scale("batch size 2 vs 32", Case("scale", (1, 10, 8)), randn(2, 1, 8, 8), randn(32, 1, 8, 8)),),
    # torch's conv, pooling, activation and linear functions; not Flatten's (torch.flatten,
    # Tensor.flatten): a plain reshape that a convolution written with unfold may use
    forbidden_calls=frozenset().union(*(s.forbidden_calls for s in _parts if s.name != "Flatten")),
    forbidden_modules=tuple({m for s in _parts for m in s.forbidden_modules} | {nn.Sequential}),
    tolerances={**_parts[0].tolerances},
    bench=Case("bench", (1, 10, 8), {}, randn(64, 1, 8, 8)),
))
