"""The Embedding and EmbeddingBag graders: the reference passes, and each typical mistake fails
naming its cause."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

_classes = solution_classes("embedding")
Embedding, EmbeddingBag = _classes["Embedding"], _classes["EmbeddingBag"]


# --- wrong Embedding layers ---------------------------------------------------------------------

class PaddingGetsGradient(Embedding):
    """Looks the padding row up like any other: it is trained."""

    def forward(self, input):
        return self.weight.index_select(0, input.reshape(-1)).reshape(*input.shape, self.embedding_dim)


class PaddingZeroedInOutput(Embedding):
    """Zeroes the outputs at padding positions instead of stopping the row's gradient: right while
    the row is zero, wrong for a pretrained matrix."""

    def forward(self, input):
        out = self.weight.index_select(0, input.reshape(-1)).reshape(*input.shape, self.embedding_dim)
        if self.padding_idx is None:
            return out
        return out * (input != self.padding_idx).unsqueeze(-1)


class NegativePaddingKept(Embedding):
    """Keeps padding_idx=-2 as -2: no id ever equals it, so row 8 is trained."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *args, **kwargs):
        super().__init__(num_embeddings, embedding_dim, padding_idx, *args, **kwargs)
        if padding_idx is not None and padding_idx < 0:
            self.padding_idx = padding_idx


class PaddingRowNotZeroed(Embedding):
    def reset_parameters(self):
        with torch.no_grad():
            self.weight.normal_()


class UniformInit(Embedding):
    def reset_parameters(self):
        with torch.no_grad():
            self.weight.uniform_(-1, 1)
            if self.padding_idx is not None:
                self.weight[self.padding_idx].zero_()


class OffByOneBelow(Embedding):
    """Ids read as if they started at 1: weight[id - 1] (id 0 wraps to the last row)."""

    def forward(self, input):
        return self.weight[input - 1]


class OffByOneAbove(Embedding):
    def forward(self, input):
        flat = input.reshape(-1) + 1
        return self.weight.index_select(0, flat).reshape(*input.shape, self.embedding_dim)


class IndexWraps(Embedding):
    """weight[ids]: id -1 silently reads the last row."""

    def forward(self, input):
        out = self.weight[input]
        if self.padding_idx is None:
            return out
        return torch.where((input == self.padding_idx).unsqueeze(-1), out.detach(), out)


class FromPretrainedMissing(Embedding):
    from_pretrained = None


class FromPretrainedReturnsTorch(Embedding):
    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        return nn.Embedding.from_pretrained(embeddings, freeze=freeze, padding_idx=padding_idx)


class FromPretrainedNotFrozen(Embedding):
    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        return super().from_pretrained(embeddings, freeze=False, padding_idx=padding_idx)


class FromPretrainedZeroesPadding(Embedding):
    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        layer = super().from_pretrained(embeddings, freeze=freeze, padding_idx=padding_idx)
        if layer.padding_idx is not None:
            with torch.no_grad():
                layer.weight[layer.padding_idx] = 0
        return layer


class CallsFEmbedding(Embedding):
    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)


class CallsTorchEmbeddingHidden(Embedding):
    def forward(self, input):
        return getattr(torch, "embed" + "ding")(self.weight, input, -1 if self.padding_idx is None
                                                else self.padding_idx)


class HiddenTorchEmbedding(Embedding):
    def forward(self, input):
        inner = nn.Embedding(1, 1)
        inner.weight = self.weight
        inner.padding_idx, inner.num_embeddings = self.padding_idx, self.num_embeddings
        return inner(input)


class InheritsTorch(nn.Embedding):
    pass


class IdLoop(Embedding):
    def forward(self, input):
        flat = [self.weight[i] for i in input.reshape(-1).tolist()]
        return torch.stack(flat).reshape(*input.shape, self.embedding_dim)


class OneHot(Embedding):
    """A correct alternative: one-hot rows times the weight matrix."""

    def forward(self, input):
        one_hot = F.one_hot(input.long(), self.num_embeddings).to(self.weight.dtype)  # (*, num_embeddings)
        out = one_hot @ self.weight  # (*, D)
        if self.padding_idx is None:
            return out
        return torch.where((input == self.padding_idx).unsqueeze(-1), out.detach(), out)


# --- wrong EmbeddingBag layers ------------------------------------------------------------------

class Bag(EmbeddingBag):
    """The reference with one behaviour switched by a class attribute."""

    mean_as_sum = count_padding = ignore_weights = max_over_padding = pad_summed_in = False
    ignore_last_offset = mean_unclamped = max_from_minus_inf = False
    lookup_f_embedding = lookup_getitem = False  # F.embedding(ids, weight), weight[ids]

    def forward(self, input, offsets=None, per_sample_weights=None):
        if input.dim() == 2:
            n_bags, length = input.shape
            ids = input.reshape(-1)
            bag = torch.arange(ids.numel(), device=ids.device) // max(length, 1)
            if per_sample_weights is not None:
                per_sample_weights = per_sample_weights.reshape(-1)
        else:
            ids = input
            starts = offsets[:-1] if self.include_last_offset and not self.ignore_last_offset else offsets
            n_bags = starts.numel()
            position = torch.arange(ids.numel(), device=ids.device, dtype=starts.dtype)
            bag = torch.searchsorted(starts, position, right=True) - 1
        if self.lookup_f_embedding:
            rows = F.embedding(ids, self.weight)
        elif self.lookup_getitem:
            rows = self.weight[ids]
        else:
            rows = self.weight.index_select(0, ids)
        if per_sample_weights is not None and not self.ignore_weights:
            rows = rows * per_sample_weights.unsqueeze(1)
        count_bag = bag
        if self.padding_idx is not None:
            is_pad = ids == self.padding_idx
            if not self.pad_summed_in and not (self.max_over_padding and self.mode == "max"):
                bag = torch.where(is_pad, n_bags, bag)
            if not self.count_padding:
                count_bag = torch.where(is_pad, n_bags, count_bag)
        dim = self.embedding_dim
        if self.mode == "max":
            index = bag.unsqueeze(1).expand(-1, dim)
            if self.max_from_minus_inf:
                base = rows.new_full((n_bags + 1, dim), float("-inf"))
                return base.scatter_reduce(0, index, rows, "amax")[:n_bags]
            return rows.new_zeros(n_bags + 1, dim).scatter_reduce(0, index, rows, "amax", include_self=False)[:n_bags]
        out = rows.new_zeros(n_bags + 1, dim).index_add(0, bag, rows)
        if self.mode == "mean" and not self.mean_as_sum:
            count = rows.new_zeros(n_bags + 1).index_add(0, count_bag, rows.new_ones(bag.shape))
            out = out / (count if self.mean_unclamped else count.clamp(min=1)).unsqueeze(1)
        return out[:n_bags]


def bag(**switches) -> type:
    name = "".join(k.title().replace("_", "") for k in switches)
    return type(name, (Bag,), switches)


class BagLoop(EmbeddingBag):
    def forward(self, input, offsets=None, per_sample_weights=None):
        if input.dim() == 2:
            weights = [None] * len(input) if per_sample_weights is None else per_sample_weights.unsqueeze(1)
            return torch.cat([super(BagLoop, self).forward(row.unsqueeze(0), None, w)
                              for row, w in zip(input, weights)])
        return super().forward(input, offsets, per_sample_weights)


class BagOffsetsLoop(EmbeddingBag):
    """One bag at a time, through the reference's own 2-d path."""

    def forward(self, input, offsets=None, per_sample_weights=None):
        if input.dim() == 2 or per_sample_weights is not None or self.include_last_offset:
            return super().forward(input, offsets, per_sample_weights)
        ends = offsets.tolist()[1:] + [input.numel()]
        out = []
        for start, end in zip(offsets.tolist(), ends):
            out.append(super().forward(input[start:end], torch.zeros(1, dtype=offsets.dtype)))
        return torch.cat(out)


class CallsFEmbeddingBag(EmbeddingBag):
    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)


class CallsPrivateEmbeddingBag(EmbeddingBag):
    def forward(self, input, offsets=None, per_sample_weights=None):
        if input.dim() == 2:
            return super().forward(input, offsets, per_sample_weights)
        mode = {"sum": 0, "mean": 1, "max": 2}[self.mode]
        return torch._embedding_bag(self.weight, input, offsets, False, mode, False, per_sample_weights,
                                    self.include_last_offset,
                                    -1 if self.padding_idx is None else self.padding_idx)[0]


class HiddenTorchEmbeddingBag(EmbeddingBag):
    def forward(self, input, offsets=None, per_sample_weights=None):
        inner = nn.EmbeddingBag(self.num_embeddings, self.embedding_dim, mode=self.mode,
                                include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)
        inner.weight = self.weight
        return inner(input, offsets, per_sample_weights)


class ArangeOnCPU(EmbeddingBag):
    """A bag index made with torch.arange without device=: fine on the CPU, broken on a GPU."""

    def forward(self, input, offsets=None, per_sample_weights=None):
        out = super().forward(input, offsets, per_sample_weights)
        return out + 0 * torch.arange(out.shape[0]).unsqueeze(1)


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("Embedding", Embedding), ("EmbeddingBag", EmbeddingBag),
                                       ("Embedding", OneHot)])
def test_the_reference_passes_the_public_and_hidden_suites(name, cls):
    """The reference, and a correct alternative (one-hot rows times the weight), pass."""
    assert_passes(name, cls, 5)


WRONG = [
    # (layer graded, wrong class, the part that must fail, words the failure must contain)
    ("Embedding", PaddingGetsGradient, "backward", "the padding row, gets a gradient"),
    ("Embedding", PaddingZeroedInOutput, "forward", "it matches the output when the padding positions are zeroed"),
    ("Embedding", NegativePaddingKept, "state", "num_embeddings + padding_idx = 10 + (-2) = 8"),
    ("Embedding", NegativePaddingKept, "backward", "weight[8], the padding row, gets a gradient"),
    ("Embedding", PaddingRowNotZeroed, "state", "the padding row weight[0] should start as zeros"),
    ("Embedding", UniformInit, "state", "'weight' is not initialised like torch's"),
    ("Embedding", OffByOneBelow, "forward", "the lookup is off by one (row id - 1"),
    ("Embedding", OffByOneAbove, "forward", "the lookup is off by one (row id + 1"),
    ("Embedding", IndexWraps, "forward", "on id -1: should raise an IndexError"),
    ("Embedding", FromPretrainedMissing, "state", "has no class method from_pretrained"),
    ("Embedding", FromPretrainedReturnsTorch, "state", "returned a torch.nn.modules.sparse.Embedding"),
    ("Embedding", FromPretrainedNotFrozen, "state", "weight.requires_grad is True, expected False"),
    ("Embedding", FromPretrainedZeroesPadding, "state", "keeps the given matrix as it is"),
    ("Embedding", CallsFEmbedding, "rules", "calls torch.nn.functional.embedding"),
    ("Embedding", CallsTorchEmbeddingHidden, "rules", "calls torch.embedding"),
    ("Embedding", HiddenTorchEmbedding, "rules", "runs a torch.nn.modules.sparse.Embedding module"),
    ("Embedding", InheritsTorch, "rules", "inherits from torch's Embedding"),
    ("Embedding", IdLoop, "rules", "not vectorized"),
    ("EmbeddingBag", bag(mean_as_sum=True), "forward", "each bag's mean is computed as a sum"),
    ("EmbeddingBag", bag(count_padding=True), "forward", "the mean divides by the bag's length including its "
                                                         "padding ids"),
    ("EmbeddingBag", bag(ignore_weights=True), "forward", "per_sample_weights are ignored"),
    ("EmbeddingBag", bag(max_over_padding=True), "forward", "padding ids take part in the max"),
    ("EmbeddingBag", bag(pad_summed_in=True), "backward", "the padding row, gets a gradient"),
    ("EmbeddingBag", bag(ignore_last_offset=True), "shape", "output shape (4, 3), expected (3, 3)"),
    ("EmbeddingBag", bag(mean_unclamped=True), "forward", "is NaN"),
    ("EmbeddingBag", bag(max_from_minus_inf=True), "forward", "overflows to -inf"),
    ("EmbeddingBag", BagLoop, "rules", "not vectorized"),
    ("EmbeddingBag", BagOffsetsLoop, "rules", "not vectorized"),
    ("EmbeddingBag", CallsFEmbeddingBag, "rules", "calls torch.nn.functional.embedding_bag"),
    ("EmbeddingBag", CallsPrivateEmbeddingBag, "rules", "_embedding_bag"),
    ("EmbeddingBag", bag(lookup_f_embedding=True), "rules", "calls torch.nn.functional.embedding"),
    ("EmbeddingBag", HiddenTorchEmbeddingBag, "rules", "runs a torch.nn.modules.sparse.EmbeddingBag module"),
    ("EmbeddingBag", bag(lookup_getitem=True), "forward", "on id -1: should raise an IndexError"),
    ("EmbeddingBag", ArangeOnCPU, "rules", "device 'meta'"),
]


@pytest.mark.parametrize("name, layer, part, cause", WRONG,
                         ids=[f"{w[0]}-{w[1].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_layer_fails_naming_the_cause(name, layer, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("layer", [OffByOneBelow, PaddingGetsGradient])
def test_the_hidden_suite_catches_embedding_mistakes_too(layer):
    for seed in range(3):
        assert not grade("Embedding", layer, suite="hidden", seed=seed).passed


def test_the_hidden_suite_catches_a_mean_computed_as_a_sum():
    """Every hidden draw has a mean-mode bag with more than one id."""
    for seed in range(5):
        assert not grade("EmbeddingBag", bag(mean_as_sum=True), suite="hidden", seed=seed).part_passed("forward")


def test_out_of_range_ids_are_checked_on_the_cpu():
    """An out-of-range index on a GPU is a device-side assert that breaks the process: the judge
    always runs that check on the CPU, whatever the grading device."""
    report = grade("Embedding", Embedding, parts=["forward"], device="cpu")
    checks = [r for r in report.results if r.check == "out of range"]
    assert len(checks) == 2 and all(r.ok for r in checks)
