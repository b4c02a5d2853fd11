"""The pooling graders: the reference passes, and each typical mistake fails naming its cause."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import CHAPTERS, SPECS, grade
from autograder.spec import Maker
from autograder.specs.pooling import POOL_CALLS
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("pooling")
MaxPool1d, MaxPool2d, MaxPool3d, MinPool2d = S["MaxPool1d"], S["MaxPool2d"], S["MaxPool3d"], S["MinPool2d"]
AvgPool1d, AvgPool2d, AvgPool3d = S["AvgPool1d"], S["AvgPool2d"], S["AvgPool3d"]
AdaptiveAvgPool2d, AdaptiveMaxPool2d = S["AdaptiveAvgPool2d"], S["AdaptiveMaxPool2d"]
# the solution's helpers, from the notebook's namespace
NS = MaxPool2d.forward.__globals__
pool_windows, pool_output_size, ntuple = NS["pool_windows"], NS["pool_output_size"], NS["_ntuple"]

LAYERS = CHAPTERS["pooling"]


def test_the_chapter_has_its_nine_layers_in_book_order():
    assert LAYERS == ["MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool2d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
                      "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]


@pytest.mark.parametrize("name", LAYERS)
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 6)


@pytest.mark.parametrize("name", LAYERS)
def test_no_input_holds_a_tie(name):
    """Ties are impossible: every public and hidden input has distinct values, so a max has one
    argmax and a correct layer's gradient cannot disagree with torch's by picking another."""
    spec = SPECS[name]
    cases = list(spec.cases) + [c for seed in range(4) for c in spec.suite("hidden", random.Random(seed))]
    for case in cases:
        for dtype in spec.dtypes:
            x = case.inputs(Maker(dtype, "cpu", 0)).args[0]
            assert x.unique().numel() == x.numel(), f"{name} {case.desc} {dtype}"


def test_the_book_example_is_a_public_case():
    """MaxPool1d(3) on arange(10) gives [2, 5, 8], and [2, 5, 8, 9] with ceil_mode."""
    x = torch.arange(10.0).reshape(1, 10)
    assert MaxPool1d(3)(x).tolist() == [[2.0, 5.0, 8.0]]
    assert MaxPool1d(3, ceil_mode=True)(x).tolist() == [[2.0, 5.0, 8.0, 9.0]]
    assert {"book_arange_10", "book_arange_10_ceil_mode"} <= {c.desc for c in SPECS["MaxPool1d"].cases}


# --- wrong layers --------------------------------------------------------------------------------
def _windows(layer, x, pad_value, edge_value=None, **change):
    """The solution's windows with `layer`'s arguments, some of them changed."""
    n = layer.n
    args = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding,
            "dilation": getattr(layer, "dilation", 1), "ceil_mode": layer.ceil_mode}
    args.update(change)
    return pool_windows(x, n, *(ntuple(args[k], n) for k in ("kernel_size", "stride", "padding", "dilation")),
                        args["ceil_mode"], pad_value, edge_value)


def max_variant(base, **change):
    class Wrong(base):
        def forward(self, input):
            return _windows(self, input, float("-inf"), **change).amax(-1)

    return Wrong


def max_stride_one(base):
    class StrideOne(base):
        """stride=None taken as 1, not as kernel_size."""

        def __init__(self, kernel_size, stride=None, *args, **kwargs):
            super().__init__(kernel_size, 1 if stride is None else stride, *args, **kwargs)

    return StrideOne


def max_zero_padding(base):
    class ZeroPadding(base):
        def forward(self, input):
            return _windows(self, input, 0.0).amax(-1)

    return ZeroPadding


def max_naive_ceil(base):
    class NaiveCeil(base):
        """ceil_mode rounds up without dropping a last window that starts in the right padding."""

        def forward(self, input):
            n = self.n
            k, s, p, d = (ntuple(getattr(self, a), n) for a in ("kernel_size", "stride", "padding", "dilation"))
            if not self.ceil_mode:
                return super().forward(input)
            extra = []
            for size, ki, si, pi, di in zip(input.shape[-n:], k, s, p, d):
                span = di * (ki - 1) + 1
                out = -(-(size + 2 * pi - span) // si) + 1
                extra.append(max(0, (out - 1) * si + span - size - 2 * pi))
            padded = F.pad(input, [q for pi, e in zip(reversed(p), reversed(extra)) for q in (pi, pi + e)],
                           value=float("-inf"))
            return _windows(self, padded, float("-inf"), padding=0, ceil_mode=False).amax(-1)

    return NaiveCeil


def calls(fn):
    """A layer whose forward is `fn(self, x)`: torch's own pooling, in one spelling or another."""
    def factory(base):
        return type(f"Calls_{fn.__name__}", (base,), {"forward": fn})

    return factory


def hidden_torch_module(module):
    def factory(base):
        class HiddenModule(base):
            """Builds torch's pooling module inside forward: in no state_dict, exact values."""

            def forward(self, input):
                kwargs = {k: v for k, v in vars(self).items()
                          if v is not None and k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                                     "count_include_pad", "divisor_override", "output_size")}
                return module(**kwargs)(input)

        return HiddenModule

    return factory


def stored_torch_module(module):
    def factory(base):
        class StoredModule(base):
            """Keeps torch's pooling module as a submodule, built in __init__ (it has no state either)."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.pool = module(*args, **kwargs)

            def forward(self, input):
                return self.pool(input)

        return StoredModule

    return factory


def position_loop(base):
    class PositionLoop(base):
        """The windows are gathered in one go, but reduced one output position at a time."""

        def forward(self, input):
            full = super().forward(input)
            positions = itertools.product(*(range(o) for o in full.shape[-self.n:]))
            values = [full[(..., *at)] * 1.0 for at in positions]
            return torch.stack(values, -1).reshape(full.shape)

    return PositionLoop


def channel_loop(base):
    class ChannelLoop(base):
        def forward(self, input):
            dim = input.dim() - getattr(self, "n", 2) - 1
            return torch.stack([super(ChannelLoop, self).forward(c) for c in input.unbind(dim)], dim)

    return ChannelLoop


def with_buffer(base):
    class WithBuffer(base):
        """Keeps the padding value as a buffer: state torch's layer does not have."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_buffer("fill", torch.tensor(float("-inf")))

    return WithBuffer


def detached(base):
    class Detached(base):
        def forward(self, input):
            return super().forward(input).detach()

    return Detached


def cpu_padding(base):
    class CPUPadding(base):
        """Pads with a tensor made without device=: fine on the CPU, broken on a GPU."""

        def forward(self, input):
            n = self.n
            p = ntuple(self.padding, n)
            fill = torch.full((), float("-inf"))  # on the CPU whatever x's device
            padded = F.pad(input, [q for pi in reversed(p) for q in (pi, pi)], value=0.0)
            mask = F.pad(torch.zeros(input.shape[-n:]), [q for pi in reversed(p) for q in (pi, pi)], value=1.0).bool()
            padded = torch.where(mask, fill, padded)
            return _windows(self, padded, float("-inf"), padding=0).amax(-1)

    return CPUPadding


def returns_max_namedtuple(base):
    class ReturnsMax(base):
        """`windows.max(-1)` returns (values, indices), not a tensor."""

        def forward(self, input):
            return _windows(self, input, float("-inf")).max(-1)

    return ReturnsMax


def inherits_torch(module):
    def factory(base):
        return type("InheritsTorch", (module,), {})

    return factory


def keeps_no_stride(base):
    class NoStrideAttribute(base):
        """Resolves stride=None locally but keeps None as the attribute."""

        def __init__(self, kernel_size, stride=None, *args, **kwargs):
            super().__init__(kernel_size, stride, *args, **kwargs)
            self.stride_used, self.stride = self.stride, stride

        def forward(self, input):
            self.stride, saved = self.stride_used, self.stride
            try:
                return super().forward(input)
            finally:
                self.stride = saved

    return NoStrideAttribute


MAX = {"MaxPool1d": MaxPool1d, "MaxPool2d": MaxPool2d, "MaxPool3d": MaxPool3d}
TORCH_MAX = {"MaxPool1d": nn.MaxPool1d, "MaxPool2d": nn.MaxPool2d, "MaxPool3d": nn.MaxPool3d}
F_MAX = {"MaxPool1d": F.max_pool1d, "MaxPool2d": F.max_pool2d, "MaxPool3d": F.max_pool3d}


def _f_max(name):
    fn = F_MAX[name]

    def f_max_pool(self, x):
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode)

    return f_max_pool


def _aten_max(self, x):
    return torch.ops.aten.max_pool2d_with_indices(x, ntuple(self.kernel_size, 2), ntuple(self.stride, 2),
                                                  ntuple(self.padding, 2), ntuple(self.dilation, 2), self.ceil_mode)[0]


def _max_via_3d(self, x):
    return F.max_pool3d(x.unsqueeze(-3), (1, *ntuple(self.kernel_size, 2)), (1, *ntuple(self.stride, 2)),
                        (0, *ntuple(self.padding, 2)), (1, *ntuple(self.dilation, 2)), self.ceil_mode).squeeze(-3)


MAX_WRONG = [
    # (the layer's name, how to make the wrong layer from the solution's, the part that must fail,
    #  words the failure must contain)
    *[(name, max_stride_one, "shape", "stride defaults to 1 instead of kernel_size") for name in MAX],
    *[(name, max_zero_padding, "forward", "is filled with zeros instead of -inf") for name in MAX],
    *[(name, lambda b: max_variant(b, ceil_mode=False), "shape", "ceil_mode is ignored") for name in MAX],
    *[(name, max_naive_ceil, "shape", "ceil_mode keeps a last window that starts in the right padding")
      for name in MAX],
    *[(name, lambda b: max_variant(b, dilation=1), "forward", "dilation is ignored") for name in MAX],
    *[(name, lambda b: max_variant(b, padding=0), "shape", "padding is ignored") for name in MAX],
    *[(name, calls(_f_max(name)), "rules", f"calls torch.nn.functional.max_pool{name[-2]}d") for name in MAX],
    *[(name, hidden_torch_module(TORCH_MAX[name]), "rules", f"runs a torch.nn.modules.pooling.{name} module")
      for name in MAX],
    *[(name, position_loop, "rules", "not vectorized") for name in MAX],
    ("MaxPool2d", stored_torch_module(nn.MaxPool2d), "rules", "runs a torch.nn.modules.pooling.MaxPool2d module"),
    ("MaxPool2d", channel_loop, "rules", "not vectorized"),
    ("MaxPool2d", calls(_aten_max), "rules", "calls aten.max_pool2d_with_indices"),
    ("MaxPool2d", calls(_max_via_3d), "rules", "calls torch.nn.functional.max_pool3d"),
    ("MaxPool2d", with_buffer, "state", "unexpected parameters/buffers ['fill']"),
    ("MaxPool2d", keeps_no_stride, "state", "attribute 'stride' is None, expected 2"),
    ("MaxPool2d", detached, "backward", "does not require grad"),
    ("MaxPool2d", cpu_padding, "rules", "device 'meta'"),
    ("MaxPool2d", returns_max_namedtuple, "shape", "expected exactly a torch.Tensor"),
    ("MaxPool2d", inherits_torch(nn.MaxPool2d), "rules", "inherits from torch's MaxPool2d"),
]


# --- min pooling ---------------------------------------------------------------------------------
def min_variant(forward):
    def factory(base):
        return type("WrongMin", (base,), {"forward": forward})

    return factory


def _min_zero_padding(self, x):
    return -_windows(self, -x, 0.0).amax(-1)


def _min_is_max(self, x):
    return MaxPool2d.forward(self, x)


def _min_not_negated_back(self, x):
    return MaxPool2d.forward(self, -x)


def _min_amin_zero_pad(self, x):
    """amin over windows padded with zeros, the other natural way to get it wrong."""
    return _windows(self, x, 0.0).amin(-1)


def _min_f_max(self, x):
    return -F.max_pool2d(-x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode)


MIN_WRONG = [
    ("MinPool2d", max_stride_one, "shape", "stride defaults to 1 instead of kernel_size"),
    ("MinPool2d", min_variant(_min_zero_padding), "forward", "is filled with zeros instead of +inf"),
    ("MinPool2d", min_variant(_min_amin_zero_pad), "forward", "is filled with zeros instead of +inf"),
    ("MinPool2d", min_variant(_min_is_max), "forward", "it computes max pooling, not min pooling"),
    ("MinPool2d", min_variant(_min_not_negated_back), "forward", "the result is not negated back"),
    ("MinPool2d", calls(_min_f_max), "rules", "calls torch.nn.functional.max_pool2d"),
    ("MinPool2d", hidden_torch_module(nn.MaxPool2d), "rules", "runs a torch.nn.modules.pooling.MaxPool2d module"),
    ("MinPool2d", position_loop, "rules", "not vectorized"),
]


# --- average pooling -----------------------------------------------------------------------------
def avg_variant(count_pad=None, overhang_counts=False, ignore_divisor=False, **change):
    """Average pooling with one thing done wrong: the padding counted (count_pad=True) or not
    (False) whatever count_include_pad says, the ceil_mode overhang counted, divisor_override
    ignored, or some arguments changed."""
    def factory(base):
        class WrongAvg(base):
            def forward(self, input):
                n = self.n
                total = _windows(self, input, 0.0, **change).sum(-1)
                if self.divisor_override and not ignore_divisor:
                    return total / self.divisor_override
                include = self.count_include_pad if count_pad is None else count_pad
                ones = input.new_ones(input.shape[-n:])
                edge = float(include) if overhang_counts else 0.0
                return total / _windows(self, ones, float(include), edge, **change).sum(-1)

        return WrongAvg

    return factory


AVG = {"AvgPool1d": AvgPool1d, "AvgPool2d": AvgPool2d, "AvgPool3d": AvgPool3d}
TORCH_AVG = {"AvgPool1d": nn.AvgPool1d, "AvgPool2d": nn.AvgPool2d, "AvgPool3d": nn.AvgPool3d}
F_AVG = {"AvgPool1d": F.avg_pool1d, "AvgPool2d": F.avg_pool2d, "AvgPool3d": F.avg_pool3d}


def _f_avg(name):
    fn = F_AVG[name]

    def f_avg_pool(self, x):
        return fn(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    return f_avg_pool


AVG_WRONG = [
    *[(name, avg_variant(count_pad=True), "forward",
       "the padding is counted in the average although count_include_pad=False") for name in AVG],
    *[(name, avg_variant(count_pad=False), "forward",
       "the padding is left out of the count although count_include_pad=True") for name in AVG],
    *[(name, avg_variant(overhang_counts=True), "forward",
       "every window is divided by the full kernel size") for name in AVG],
    *[(name, max_stride_one, "shape", "stride defaults to 1 instead of kernel_size") for name in AVG],
    *[(name, avg_variant(ceil_mode=False), "shape", "ceil_mode is ignored") for name in AVG],
    *[(name, avg_variant(padding=0), "shape", "padding is ignored") for name in AVG],
    *[(name, calls(_f_avg(name)), "rules", f"calls torch.nn.functional.avg_pool{name[-2]}d") for name in AVG],
    *[(name, hidden_torch_module(TORCH_AVG[name]), "rules", f"runs a torch.nn.modules.pooling.{name} module")
      for name in AVG],
    *[(name, position_loop, "rules", "not vectorized") for name in AVG],
    ("AvgPool2d", avg_variant(ignore_divisor=True), "forward", "divisor_override is ignored"),
    ("AvgPool3d", avg_variant(ignore_divisor=True), "forward", "divisor_override is ignored"),
    ("AvgPool2d", stored_torch_module(nn.AvgPool2d), "rules", "runs a torch.nn.modules.pooling.AvgPool2d module"),
    ("AvgPool2d", channel_loop, "rules", "not vectorized"),
    ("AvgPool2d", keeps_no_stride, "state", "attribute 'stride' is None, expected 2"),
]


# --- adaptive pooling ----------------------------------------------------------------------------
def adaptive_bounds(bounds, reduce):
    """Adaptive pooling with windows [start, end) = bounds(i, L, O), vectorized like the solution."""
    def factory(base):
        class WrongAdaptive(base):
            def forward(self, input):
                x = input
                for i, out in enumerate(NS["_output_sizes"](self.output_size, x)):
                    dim = x.dim() - 2 + i
                    size = x.shape[dim]
                    windows = [bounds(j, size, out) for j in range(out)]
                    longest = max(b - a for a, b in windows)
                    index = torch.tensor([[min(a + t, size - 1) for t in range(longest)] for a, _ in windows])
                    inside = torch.tensor([[a + t < b for t in range(longest)] for a, b in windows])
                    w = x.index_select(dim, index.flatten()).unflatten(dim, (out, longest))
                    shape = [1] * w.dim()
                    shape[dim], shape[dim + 1] = out, longest
                    x = reduce(w, inside.reshape(shape), dim + 1)
                return x

        return WrongAdaptive

    return factory


def _mean(w, inside, dim):
    return (w * inside).sum(dim) / inside.sum(dim)


def _amax(w, inside, dim):
    return w.masked_fill(~inside, float("-inf")).amax(dim)


def _floor_end(i, size, out):
    return i * size // out, max((i + 1) * size // out, i * size // out + 1)


def _fixed_stride(i, size, out):
    stride = max(size // out, 1)
    return i * stride, min(i * stride + size - (out - 1) * stride, size)


def adaptive_loop(reduce):
    """One output position at a time, each a slice: correct values, a Python loop over positions."""
    def forward(self, input):
        oh, ow = NS["_output_sizes"](self.output_size, input)
        h, w = input.shape[-2:]
        rows = [torch.stack([reduce(input[..., i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)])
                             for j in range(ow)], -1) for i in range(oh)]
        return torch.stack(rows, -2)

    return calls(forward)


def _f_adaptive_avg(self, x):
    return F.adaptive_avg_pool2d(x, self.output_size)


def _f_adaptive_max(self, x):
    return F.adaptive_max_pool2d(x, self.output_size)


def _aten_adaptive_avg(self, x):
    return torch._C._nn.adaptive_avg_pool2d(x, NS["_output_sizes"](self.output_size, x))


def _global_only(self, x):
    """Always global pooling, whatever output_size."""
    return x.mean((-2, -1), keepdim=True)


ADAPTIVE_WRONG = [
    ("AdaptiveAvgPool2d", adaptive_bounds(_floor_end, _mean), "forward", "windows end at floor((i + 1) * L / O)"),
    ("AdaptiveMaxPool2d", adaptive_bounds(_floor_end, _amax), "forward", "windows end at floor((i + 1) * L / O)"),
    ("AdaptiveAvgPool2d", adaptive_bounds(_fixed_stride, _mean), "forward", "one kernel and stride for all windows"),
    ("AdaptiveMaxPool2d", adaptive_bounds(_fixed_stride, _amax), "forward", "one kernel and stride for all windows"),
    ("AdaptiveAvgPool2d", calls(_f_adaptive_avg), "rules", "calls torch.nn.functional.adaptive_avg_pool2d"),
    ("AdaptiveMaxPool2d", calls(_f_adaptive_max), "rules", "calls torch.nn.functional.adaptive_max_pool2d"),
    ("AdaptiveAvgPool2d", calls(_aten_adaptive_avg), "rules", "calls adaptive_avg_pool2d"),
    ("AdaptiveAvgPool2d", hidden_torch_module(nn.AdaptiveAvgPool2d), "rules",
     "runs a torch.nn.modules.pooling.AdaptiveAvgPool2d module"),
    ("AdaptiveMaxPool2d", hidden_torch_module(nn.AdaptiveMaxPool2d), "rules",
     "runs a torch.nn.modules.pooling.AdaptiveMaxPool2d module"),
    ("AdaptiveAvgPool2d", adaptive_loop(lambda t: t.mean((-2, -1))), "rules", "not vectorized"),
    ("AdaptiveMaxPool2d", adaptive_loop(lambda t: t.amax((-2, -1))), "rules", "not vectorized"),
    ("AdaptiveAvgPool2d", stored_torch_module(nn.AdaptiveAvgPool2d), "rules",
     "runs a torch.nn.modules.pooling.AdaptiveAvgPool2d module"),
    ("AdaptiveAvgPool2d", channel_loop, "rules", "not vectorized"),
    ("AdaptiveAvgPool2d", calls(_global_only), "shape", "output shape"),
]


WRONG = MAX_WRONG + MIN_WRONG + AVG_WRONG + ADAPTIVE_WRONG
#: the wrong layers the rows' factories make, one per row (tests/trusted grades them in a sandbox)
WRONG_LAYERS = [factory(S[name]) for name, factory, _, _ in WRONG]


def _id(row) -> str:
    name, factory, part, cause = row
    return f"{name}-{part}-{cause[:40]}"


@pytest.mark.parametrize("name, factory, part, cause", WRONG, ids=[_id(w) for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(name, factory, part, cause):
    layer = factory(S[name])
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("name, factory, part, cause", [
    ("MaxPool2d", max_stride_one, "shape", "stride defaults to 1"),
    ("MaxPool3d", max_zero_padding, "forward", "filled with zeros"),
    ("MinPool2d", min_variant(_min_zero_padding), "forward", "filled with zeros"),
    ("AvgPool2d", avg_variant(count_pad=False), "forward", "left out of the count"),
    ("AvgPool1d", avg_variant(count_pad=True), "forward", "counted in the average although"),
    ("AvgPool3d", max_stride_one, "shape", "stride defaults to 1"),
    ("MaxPool1d", lambda b: max_variant(b, ceil_mode=False), "shape", "ceil_mode is ignored"),
    ("AdaptiveMaxPool2d", adaptive_bounds(_floor_end, _amax), "forward", "windows end at floor"),
    ("AdaptiveAvgPool2d", adaptive_bounds(_fixed_stride, _mean), "forward", "one kernel and stride"),
])
def test_the_hidden_suite_catches_the_classic_mistakes_too(name, factory, part, cause):
    """Fresh configurations at every grading still show the mistake (padded, ceil_mode, odd sizes)."""
    for seed in range(3):
        assert_fails_naming(grade(name, factory(S[name]), suite="hidden", seed=seed), part, cause)


PYTHON_LEVEL_POOLING = {
    "F.max_pool2d": lambda x: F.max_pool2d(x, 2),
    "F.max_pool2d(return_indices)": lambda x: F.max_pool2d(x, 2, return_indices=True)[0],
    "torch.max_pool2d": lambda x: torch.max_pool2d(x, 2),
    "F.avg_pool2d": lambda x: F.avg_pool2d(x, 2),
    "torch._C._nn.avg_pool2d": lambda x: torch._C._nn.avg_pool2d(x, 2),
    "F.adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 2),
    "torch._C._nn.adaptive_avg_pool2d": lambda x: torch._C._nn.adaptive_avg_pool2d(x, 2),
    "torch._adaptive_avg_pool2d": lambda x: torch._adaptive_avg_pool2d(x, [2, 2]),
    "F.adaptive_max_pool2d": lambda x: F.adaptive_max_pool2d(x, 2),
    "F.lp_pool2d": lambda x: F.lp_pool2d(x, 1, 2),
    "F.max_pool1d": lambda x: F.max_pool1d(x.flatten(-2), 2),
    "torch.avg_pool1d": lambda x: torch.avg_pool1d(x.flatten(-2), 2),
    "aten.max_pool2d_with_indices": lambda x: torch.ops.aten.max_pool2d_with_indices(x, [2, 2])[0],
    "aten.max_pool2d.default": lambda x: torch.ops.aten.max_pool2d.default(x, [2, 2]),
    "aten.avg_pool2d": lambda x: torch.ops.aten.avg_pool2d(x, [2, 2]),
    "aten._adaptive_avg_pool2d": lambda x: torch.ops.aten._adaptive_avg_pool2d(x, [2, 2]),
}


@pytest.mark.parametrize("spelling", list(PYTHON_LEVEL_POOLING))
def test_every_spelling_of_torch_pooling_is_forbidden(spelling):
    """However a forward reaches torch's pooling, the tracer's name for it is in POOL_CALLS."""
    from autograder.trace import tracing

    with tracing(ops=False) as trace:
        PYTHON_LEVEL_POOLING[spelling](torch.randn(1, 2, 4, 4))
    assert trace.calls and any(c in POOL_CALLS for c in trace.calls), dict(trace.calls)


def test_tensor_methods_the_solution_needs_are_not_forbidden():
    assert not {"torch.Tensor.unfold", "torch.nn.functional.pad", "torch.Tensor.amax",
                "torch.nn.functional.unfold", "torch.Tensor.index_select"} & POOL_CALLS
