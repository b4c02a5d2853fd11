"""The spec registry: one module per chapter, imported in book order.

Each chapter module calls `register(...)` with one `Spec` per layer, in the order the chapter
teaches them; `CHAPTERS` and `SPECS` (in `autograder.spec`) follow this order.
"""

from importlib import import_module

#: chapter slugs in book order (folder names in book/, solutions/ and exercises/)
CHAPTER_ORDER = (
    "linear",
    "conv",
    "conv_transpose",
    "pooling",
    "normalization",
    "dropout",
    "embedding",
    "recurrent",
    "transformer",
    "activations",
    "flatten",
    "losses",
    "capstone",  # a network of the layers above: imported last, its spec reuses theirs
)

for _slug in CHAPTER_ORDER:
    import_module(f"{__name__}.{_slug}")
