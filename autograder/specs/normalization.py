"""Normalization: BatchNorm1d/2d/3d, LayerNorm, GroupNorm, InstanceNorm2d and RMSNorm.

Every layer here computes y = (x - mean) / sqrt(var + eps) * weight + bias over some axes; what
differs is the axes, where the statistics come from (the batch, running estimates, each sample)
and the learnable parameters. The specs make each way of getting that wrong show in the values:

- torch starts every layer with weight 1, bias 0, running_mean 0 and running_var 1, which hides
  a forgotten affine transform and a swapped momentum. The graded references therefore start
  from random parameters and running statistics (`_randomised`); a judge checks separately that
  a fresh layer starts like torch's (`_fresh_state`).
- BatchNorm runs three training steps per dtype and compares the buffers after each one, then an
  eval step; `BufferMistake`s name the wrong running-statistic updates.
- Small-variance inputs and a large `eps` make eps-outside-the-square-root visible; batches of
  two make the unbiased variance (n - 1) far from the biased one (n).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.overrides import resolve_name

from ..engine import SCALE_SLACK, raised
from ..judges import attributes
from ..report import Result
from ..spec import TOLERANCES, BufferMistake, Case, Inputs, Maker, Mistake, Scale, Spec, call, register, seed_of

Tensor = torch.Tensor

#: float32 gradients of a normalization reach 1/sqrt(var + eps), about 300 for the small-variance
#: inputs, and come from differences of such terms: an absolute error of 1e-5 (the default) is
#: within float32's rounding there. float64 stays as tight as everywhere; it is where mistakes show.
NORM_TOLERANCES = {**TOLERANCES, torch.float32: (1e-4, 1e-4)}

# --- what may not be called ----------------------------------------------------------------------

#: torch's normalisation functions, as the tracer names them (`torch.overrides.resolve_name`, or the
#: qualified name for private ones); a norm layer may not use any of them, e.g. GroupNorm through
#: F.batch_norm, or LayerNorm through F.group_norm
_TORCH_FUNCTIONS = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "native_batch_norm",
                    "native_layer_norm", "native_group_norm", "_native_batch_norm_legit",
                    "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_fused_rms_norm",
                    "cudnn_batch_norm", "miopen_batch_norm", "batch_norm_elemt", "batch_norm_stats",
                    "batch_norm_gather_stats", "batch_norm_gather_stats_with_counts", "batch_norm_update_stats",
                    "quantized_batch_norm", "_batch_norm_with_update", "_batch_norm_no_update")
_FUNCTIONAL = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm")


def _forbidden_calls() -> frozenset[str]:
    names = {f"torch.nn.functional.{f}" for f in _FUNCTIONAL}
    for f in _TORCH_FUNCTIONS:
        names |= {f"torch.{f}", f"_VariableFunctionsClass.{f}", f"aten.{f}", f"aten.{f}.default"}
        func = getattr(torch, f, None)
        if func is not None:
            names.add(resolve_name(func) or getattr(func, "__qualname__", f))
        if hasattr(torch.ops.aten, f):  # every overload, e.g. aten.native_batch_norm.out
            packet = getattr(torch.ops.aten, f)
            for overload in packet.overloads():
                names.add(resolve_name(getattr(packet, overload)) or f"aten.{f}.{overload}")
    return frozenset(names)


FORBIDDEN_CALLS = _forbidden_calls()
#: concrete classes first, so "your class inherits from torch's BatchNorm1d" names the right one
FORBIDDEN_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
                     nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                     nn.LocalResponseNorm, nn.modules.batchnorm._NormBase)


# --- the references: torch's layers, from non-trivial parameters and running statistics -----------

def _randomised(cls: type) -> Callable[..., nn.Module]:
    """`cls(*args)` with random weight, bias and running statistics (drawn from the seed the engine
    sets), so that leaving out the affine transform or mixing up old and new statistics shows."""

    def build(*args, **kwargs) -> nn.Module:
        layer = cls(*args, **kwargs)
        with torch.no_grad():
            for name, p in layer.named_parameters():
                p.copy_(1 + 0.5 * torch.randn_like(p) if name == "weight" else 0.5 * torch.randn_like(p))
            if getattr(layer, "running_mean", None) is not None:
                layer.running_mean.copy_(0.5 * torch.randn_like(layer.running_mean))
                layer.running_var.uniform_(0.5, 2.0)
        return layer

    build.__name__ = build.__qualname__ = cls.__name__
    return build


def _fresh_state(torch_cls: type):
    """Judge: a freshly built layer starts like torch's (weight 1, bias 0, running_mean 0,
    running_var 1, num_batches_tracked 0 as a long). The graded references start from random
    values instead, so the engine's own initialisation check cannot be used."""

    def judge(ctx):
        if "state" not in ctx.parts:
            return
        for case in ctx.cases:
            where = case.label(ctx.spec.name) + " fresh"
            stu = ctx.student(case, where, ("state",))
            if stu is None:
                continue
            try:
                got = stu.state_dict()
            except Exception as exc:  # noqa: BLE001
                yield Result("state", where, False, f"state_dict() {raised(exc)}", "initialisation")
                continue
            for name, want in torch_cls(*case.args, **dict(case.kwargs)).state_dict().items():
                g = got.get(name)
                if not isinstance(g, Tensor) or g.shape != want.shape:
                    continue  # reported by the state check of the graded cases
                g = g.detach().cpu()
                if g.dtype != want.dtype and not (g.is_floating_point() and want.is_floating_point()):
                    detail = f"{name!r} is a {g.dtype} tensor; torch's is {want.dtype}"
                elif not torch.equal(g.to(want.dtype), want):
                    detail = f"{name!r} should start as {want.flatten()[0].item():g} everywhere, like torch's"
                else:
                    detail = ""
                yield Result("state", where, not detail, detail, "initialisation", check=name)

    return judge


def _loop_probe(what: str, small: Case, large: Case, small_in: Callable[[Maker], Inputs],
                large_in: Callable[[Maker], Inputs]):
    """Judge: the op count must not grow from `small` to `large`, two configurations that differ in
    a constructor argument (channels, groups): what `Scale` cannot vary."""

    def judge(ctx):
        if "rules" not in ctx.parts:
            return
        counts = []
        for case, inputs in ((small, small_in), (large, large_in)):
            where = case.label(ctx.spec.name)
            ref, stu = ctx.reference(case), ctx.student(case, where, ("rules",))
            if stu is None or not ctx.load(stu, ref, where, what):
                return
            try:
                stu.train(True)
                counts.append(ctx.count_ops(stu, inputs(Maker(torch.float32, ctx.device, seed_of(what)))))
            except Exception as exc:  # noqa: BLE001
                yield Result("rules", where, False, f"vectorization probe ({what}): forward {raised(exc)}", check=what)
                return
        factor, extra = SCALE_SLACK
        ok = counts[1] <= factor * counts[0] + extra
        few, many = small.label(ctx.spec.name), large.label(ctx.spec.name)
        yield Result("rules", many, ok, f"not vectorized: the forward runs {counts[0]} tensor ops for {few} and "
                     f"{counts[1]} for {many} ({what}); a Python loop? Reduce over several dims at once, "
                     "e.g. x.mean(dim=(0, 2), keepdim=True)", check=what)

    return judge


def _autograd_probe(case: Case, mistaken: Callable[[nn.Module, Tensor], Tensor]):
    """Judge: name two classic autograd bugs of a training-mode forward, in float64.

    - backward: statistics computed under torch.no_grad() (often together with the running
      update) give the right output but a wrong input gradient: it must flow through the mean
      and the variance too. `mistaken(ref, x)` is the output with the statistics detached.
    - state: buffers updated outside torch.no_grad() carry autograd history, which keeps every
      step's graph alive (memory grows step after step).
    """

    def judge(ctx):
        if not {"backward", "state"} & set(ctx.parts):
            return
        where = case.label(ctx.spec.name)
        ref, stu = ctx.reference(case).double(), ctx.student(case, where, ("backward", "state"))
        if stu is None:
            return
        try:
            stu.to(dtype=torch.float64)
            stu.load_state_dict(ref.state_dict())
            stu.train(True), ref.train()
            maker = Maker(torch.float64, ctx.device, seed_of(ctx.spec.name, case.desc, "autograd"))
            x = case.inputs(maker).args[0]
            upstream = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0)).to(x.device)

            def grad_of(run: Callable[[Tensor], Tensor]) -> Tensor | None:
                leaf = x.detach().clone().requires_grad_(True)
                out = run(leaf)
                if not isinstance(out, Tensor) or out.shape != x.shape or not out.requires_grad:
                    return None
                return torch.autograd.grad(out, leaf, upstream)[0]

            forward = stu.forward(call(x), leaves=True)
            got = None
            out = forward.output
            if isinstance(out, Tensor) and out.shape == x.shape and forward.requires_grad[0]:
                got = stu.backward([0], [upstream]).inputs[0]
            history = stu.buffer_history()
            want, wrong = grad_of(ref), grad_of(lambda t: mistaken(copy.deepcopy(ref), t))
        except Exception:  # noqa: BLE001 - the engine's own checks report crashes
            return
        yield Result("state", where, not history, f"buffer(s) {history} carry autograd history after a training "
                     "step: update them under torch.no_grad(), or every step's graph stays alive and memory grows",
                     "float64, train", check="buffer history")
        if got is None:
            return
        close = lambda a, b: torch.allclose(a, b, rtol=1e-6, atol=1e-8)  # noqa: E731
        yield Result("backward", where, close(got, want) or not close(got, wrong),
                     "the gradient of the input matches the one with the mean and variance detached: compute the "
                     "statistics outside torch.no_grad() (only the running-statistics update belongs in it) and "
                     "without .detach(), so the gradient flows through them too", "float64, train",
                     check="gradient through the statistics")

    return judge


# --- inputs ----------------------------------------------------------------------------------------

def _varied(make: Maker, shape: tuple[int, ...], dim: int, scale: float) -> Tensor:
    """Normal values whose mean (in [-2, 2]) and spread (in [0.5, 2]) differ along `dim`, times
    `scale`: statistics taken over the wrong axes then come out visibly different."""
    side = [1] * len(shape)
    side[dim] = shape[dim]
    spread = make.uniform(*side, low=0.5, high=2.0)
    offset = make.uniform(*side, low=-2.0, high=2.0)
    return (make.randn(*shape) * spread + offset) * scale


def data(*shape: int, dim: int = 1, scale: float = 1.0) -> Callable[[Maker], Inputs]:
    """Inputs of `shape` whose statistics vary along `dim` (the channels, by default)."""
    return lambda make: call(_varied(make, shape, dim, scale))


def book_example(make: Maker) -> Inputs:
    """The book's worked example: arange(20).reshape(4, 5), normalised column by column."""
    return call(make.tensor(torch.arange(20.0).reshape(4, 5)))


# --- the maths, with the mistakes as options ---------------------------------------------------------

def normalise(x: Tensor, dims, eps: float, *, unbiased: bool = False, eps_outside: bool = False,
              center: bool = True, detach: bool = False) -> Tensor:
    """(x - mean) / sqrt(var + eps) over `dims`, or one of the classic ways to get it wrong."""
    dims = tuple(dims)
    mean = x.mean(dims, keepdim=True) if center else torch.zeros((), dtype=x.dtype, device=x.device)
    var = ((x - mean) ** 2).sum(dims, keepdim=True) / (_count(x, dims) - int(unbiased))
    if detach:
        mean, var = mean.detach(), var.detach()
    return (x - mean) / (var.sqrt() + eps if eps_outside else (var + eps).sqrt())


def _count(x: Tensor, dims) -> int:
    n = 1
    for d in dims:
        n *= x.shape[d]
    return n


def _channel_view(p: Tensor, x: Tensor, channel_dim: int = 1) -> Tensor:
    """(C,) -> broadcastable against x with the channels at `channel_dim`: (1, C, 1, ...)."""
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    return p.reshape(shape)


def _channel_affine(y: Tensor, layer: nn.Module, x: Tensor, channel_dim: int = 1) -> Tensor:
    if getattr(layer, "weight", None) is not None:
        y = y * _channel_view(layer.weight, x, channel_dim)
    if getattr(layer, "bias", None) is not None:
        y = y + _channel_view(layer.bias, x, channel_dim)
    return y


def _elementwise_affine(y: Tensor, layer: nn.Module) -> Tensor:
    if getattr(layer, "weight", None) is not None:
        y = y * layer.weight
    if getattr(layer, "bias", None) is not None:
        y = y + layer.bias
    return y


def _not_affine(layer: nn.Module) -> None:
    if getattr(layer, "weight", None) is None:
        raise ValueError("the layer has no affine parameters: the mistake does not apply")


# --- BatchNorm ------------------------------------------------------------------------------------

def _bn_dims(x: Tensor) -> list[int]:
    return [0, *range(2, x.dim())]  # every dim but the channels


def batch_norm(ref: nn.Module, x: Tensor, *, batch_stats: bool | None = None, dims=None, affine: bool = True,
               **options) -> Tensor:
    """BatchNorm's output from torch's layer `ref` (its mode, eps, parameters and running
    statistics), with `options` of `normalise` to reproduce a mistake."""
    if batch_stats is None:
        batch_stats = ref.training or ref.running_mean is None
    if batch_stats:
        y = normalise(x, _bn_dims(x) if dims is None else dims, ref.eps, **options)
    else:
        mean, var = _channel_view(ref.running_mean, x), _channel_view(ref.running_var, x)
        eps_outside = options.get("eps_outside", False)
        y = (x - mean) / (var.sqrt() + ref.eps if eps_outside else (var + ref.eps).sqrt())
    return _channel_affine(y, ref, x) if affine else y


def _batch_stats_in_eval(ref: nn.Module, x: Tensor) -> Tensor:
    if ref.training or ref.running_mean is None:
        raise ValueError("only for eval mode with running statistics")
    return batch_norm(ref, x, batch_stats=True)


def _batch_only_dims(ref: nn.Module, x: Tensor) -> Tensor:
    if x.dim() < 3:
        raise ValueError("no positions: the mistake does not apply")
    return batch_norm(ref, x, dims=(0,))


def _bn_no_affine(ref: nn.Module, x: Tensor) -> Tensor:
    _not_affine(ref)
    return batch_norm(ref, x, affine=False)


BATCHNORM_MISTAKES = (
    Mistake("eval mode normalises with the batch's statistics; in eval mode BatchNorm must use the "
            "running_mean and running_var it collected during training",
            lambda ref, i: _batch_stats_in_eval(ref, i.args[0])),
    Mistake("the batch variance is the unbiased one (dividing by n - 1): normalise with the biased variance, "
            "dividing by n (torch.var(..., correction=0) or unbiased=False)",
            lambda ref, i: batch_norm(ref, i.args[0], unbiased=True)),
    Mistake("eps is added outside the square root: (x - mean) / (sqrt(var) + eps) instead of "
            "(x - mean) / sqrt(var + eps)",
            lambda ref, i: batch_norm(ref, i.args[0], eps_outside=True)),
    Mistake("the statistics are taken over the batch dimension alone, separately at every position; "
            "BatchNorm shares one mean and variance per channel over the batch AND all positions "
            "(dims 0, 2, 3, ...)",
            lambda ref, i: _batch_only_dims(ref, i.args[0])),
    Mistake("one mean and variance are taken over the whole tensor instead of one per channel",
            lambda ref, i: batch_norm(ref, i.args[0], dims=range(i.args[0].dim()))),
    Mistake("the weight and bias (the learnable scale and shift) are not applied",
            lambda ref, i: _bn_no_affine(ref, i.args[0])),
)


def _running(before: Mapping[str, Tensor], ref: nn.Module, x: Tensor, *, unbiased: bool = True,
             swapped: bool = False) -> dict[str, Tensor]:
    """The running statistics after one batch, from the student's own `before`, possibly wrong."""
    count = before["num_batches_tracked"] + 1
    factor = ref.momentum if ref.momentum is not None else 1.0 / float(count)
    dims = _bn_dims(x)
    mean = x.mean(dims)
    var = x.var(dims, correction=int(unbiased))
    old_mean, old_var = before["running_mean"], before["running_var"]
    if swapped:
        return {"running_mean": factor * old_mean + (1 - factor) * mean,
                "running_var": factor * old_var + (1 - factor) * var}
    return {"running_mean": (1 - factor) * old_mean + factor * mean,
            "running_var": (1 - factor) * old_var + factor * var, "num_batches_tracked": count}


def _in_mode(ref: nn.Module, training: bool) -> None:
    if ref.training != training:
        raise ValueError("the mistake does not apply in this mode")


def _wrong_update(training: bool, **options) -> Callable:
    """A buffer mistake's update: `_running(..., **options)` in the given mode only."""

    def update(before: Mapping[str, Tensor], ref: nn.Module, inputs: Inputs) -> dict[str, Tensor]:
        _in_mode(ref, training)
        if options.get("frozen_count"):  # read, never popped: the mistake is asked again and again
            return {"num_batches_tracked": before["num_batches_tracked"]}
        return _running(before, ref, inputs.args[0], **options)

    return update


BATCHNORM_BUFFER_MISTAKES = (
    BufferMistake("running_var is updated with the biased batch variance; the running estimate uses the "
                  "unbiased one, dividing by n - 1 (even though the normalisation itself divides by n)",
                  _wrong_update(True, unbiased=False)),
    BufferMistake("the running statistics use the other momentum convention, momentum * old + (1 - momentum) * new; "
                  "torch's is (1 - momentum) * old + momentum * new",
                  _wrong_update(True, swapped=True)),
    BufferMistake("num_batches_tracked is not incremented: add 1 at every training-mode forward",
                  _wrong_update(True, frozen_count=True)),
    BufferMistake("the running statistics are also updated in eval mode; update them only in training mode",
                  _wrong_update(False)),
)


def _hidden_batchnorm(dim: int):
    """Fresh sizes and options at every grading, for BatchNorm{dim}d."""

    def hidden(rng: random.Random):
        c = rng.randint(2, 7)

        def shape(n: int) -> tuple[int, ...]:
            if dim == 1:
                return (n, c) if rng.random() < 0.5 else (n, c, rng.randint(2, 6))
            return (n, c, *[rng.randint(2, 4) for _ in range(dim)])

        momentum = rng.choice([0.05, 0.2, 0.3, 0.7])
        yield Case("hidden_default", (c,), {}, data(*shape(rng.randint(3, 8))))
        yield Case("hidden_momentum", (c,), {"momentum": momentum}, data(*shape(rng.randint(3, 8))))
        yield Case("hidden_cumulative", (c,), {"momentum": None, "affine": rng.random() < 0.5},
                   data(*shape(rng.randint(3, 6))))
        yield Case("hidden_no_running_stats", (c,), {"track_running_stats": False}, data(*shape(rng.randint(3, 6))))
        yield Case("hidden_eps", (c,), {"eps": rng.choice([0.1, 0.5, 1.0])}, data(*shape(2), scale=0.5))
        yield Case("hidden_small_variance", (c,), {"momentum": momentum}, data(*shape(rng.randint(3, 6)), scale=1e-3))

    return hidden


def batchnorm_spec(dim: int, cases: tuple[Case, ...], shape: Callable[[int, int, int], tuple[int, ...]]) -> Spec:
    """BatchNorm{dim}d; `shape(n, c, size)` is an input shape with batch n, c channels, positions of `size`."""
    torch_cls = getattr(nn, f"BatchNorm{dim}d")
    name = torch_cls.__name__
    probe = Case("probe", (3,))
    return Spec(
        name=name,
        chapter="normalization",
        reference=_randomised(torch_cls),
        cases=cases,
        hidden=_hidden_batchnorm(dim),
        steps=3,
        scales=(
            Scale("batch size 4 vs 64", probe, data(*shape(4, 3, 3)), data(*shape(64, 3, 3))),
            Scale("positions 2 vs 12 per dim", probe, data(*shape(4, 3, 2)), data(*shape(4, 3, 12))),
        ),
        forbidden_calls=FORBIDDEN_CALLS,
        tolerances=NORM_TOLERANCES,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=BATCHNORM_MISTAKES,
        buffer_mistakes=BATCHNORM_BUFFER_MISTAKES,
        judges=(
            _fresh_state(torch_cls),
            attributes("num_features", "eps", "momentum", "affine", "track_running_stats"),
            _loop_probe("channels 2 vs 24", Case("probe_2", (2,)), Case("probe_24", (24,)),
                        data(*shape(4, 2, 3)), data(*shape(4, 24, 3))),
            _autograd_probe(cases[0], lambda ref, x: batch_norm(ref, x, detach=True)),
        ),
        bench=Case("bench", (64,), {}, data(*shape(64, 64, 16))),
    )


register(
    batchnorm_spec(1, (
        Case("default", (4,), {}, data(6, 4)),
        Case("book_example", (5,), {}, book_example),  # the book's ±1.3416, ±0.4472
        Case("sequence_input", (3,), {}, data(4, 3, 6)),  # (N, C, L): one statistic per channel over N and L
        Case("momentum", (4,), {"momentum": 0.3}, data(5, 4)),
        Case("cumulative_average", (4,), {"momentum": None}, data(5, 4, 3)),
        Case("no_affine", (3,), {"affine": False}, data(6, 3)),
        Case("no_bias", (3,), {"bias": False}, data(6, 3, 2)),
        Case("no_running_stats", (4,), {"track_running_stats": False}, data(5, 4)),
        Case("large_eps", (4,), {"eps": 0.5}, data(4, 4, scale=0.5)),
        Case("small_variance", (4,), {}, data(6, 4, scale=1e-3)),
        Case("batch_of_two", (3,), {"momentum": 0.2}, data(2, 3)),
        Case("combined", (3,), {"eps": 1e-3, "momentum": None, "affine": False}, data(3, 3, 5)),
    ), lambda n, c, size: (n, c, size)),
    batchnorm_spec(2, (
        Case("default", (3,), {}, data(4, 3, 5, 4)),
        Case("momentum", (3,), {"momentum": 0.3}, data(2, 3, 3, 3)),
        Case("cumulative_average", (2,), {"momentum": None}, data(3, 2, 4, 2)),
        Case("no_affine", (3,), {"affine": False}, data(2, 3, 3, 4)),
        Case("no_running_stats", (3,), {"track_running_stats": False}, data(3, 3, 2, 5)),
        Case("large_eps", (2,), {"eps": 0.5}, data(2, 2, 3, 3, scale=0.5)),
        Case("small_variance", (3,), {}, data(2, 3, 4, 4, scale=1e-3)),
        Case("batch_of_one", (4,), {}, data(1, 4, 3, 3)),  # fine for BatchNorm2d: 9 values per channel
    ), lambda n, c, size: (n, c, size, size)),
    batchnorm_spec(3, (
        Case("default", (3,), {}, data(3, 3, 2, 3, 4)),
        Case("momentum", (2,), {"momentum": 0.3, "bias": False}, data(2, 2, 3, 2, 2)),
        Case("cumulative_average", (2,), {"momentum": None}, data(2, 2, 2, 2, 3)),
        Case("no_running_stats", (3,), {"track_running_stats": False, "affine": False}, data(2, 3, 2, 2, 2)),
        Case("small_variance", (2,), {"eps": 1e-4}, data(2, 2, 2, 3, 3, scale=1e-3)),
    ), lambda n, c, size: (n, c, size, size, size)),
)


# --- LayerNorm ------------------------------------------------------------------------------------

def _last_dims(layer: nn.Module) -> tuple[int, ...]:
    return tuple(range(-len(layer.normalized_shape), 0))


def layer_norm(ref: nn.Module, x: Tensor, *, dims=None, affine: bool = True, **options) -> Tensor:
    y = normalise(x, _last_dims(ref) if dims is None else dims, ref.eps, **options)
    return _elementwise_affine(y, ref) if affine else y


def _last_dim_only(ref: nn.Module, x: Tensor, norm: Callable) -> Tensor:
    if len(ref.normalized_shape) < 2:
        raise ValueError("one normalised dim: the mistake does not apply")
    return norm(ref, x, dims=(-1,))


def _ln_no_affine(ref: nn.Module, x: Tensor) -> Tensor:
    _not_affine(ref)
    return layer_norm(ref, x, affine=False)


def _ln_over_batch(ref: nn.Module, x: Tensor) -> Tensor:
    if x.dim() == len(ref.normalized_shape):
        raise ValueError("no batch dimension")
    return layer_norm(ref, x, dims=(0,))


LAYERNORM_MISTAKES = (
    Mistake("only the last dimension is normalised; with a normalized_shape of several dims, one mean and one "
            "variance are taken over all of the last len(normalized_shape) dims together",
            lambda ref, i: _last_dim_only(ref, i.args[0], layer_norm)),
    Mistake("the variance is the unbiased one (dividing by n - 1): LayerNorm uses the biased variance, dividing by n",
            lambda ref, i: layer_norm(ref, i.args[0], unbiased=True)),
    Mistake("eps is added outside the square root: (x - mean) / (sqrt(var) + eps) instead of "
            "(x - mean) / sqrt(var + eps)",
            lambda ref, i: layer_norm(ref, i.args[0], eps_outside=True)),
    Mistake("the statistics are taken over the batch (as BatchNorm does) instead of over each sample's own "
            "last dims", lambda ref, i: _ln_over_batch(ref, i.args[0])),
    Mistake("the weight and bias (the learnable scale and shift) are not applied",
            lambda ref, i: _ln_no_affine(ref, i.args[0])),
)


def _hidden_layernorm(rng: random.Random):
    a, b, c = rng.randint(3, 6), rng.randint(3, 6), rng.randint(3, 6)
    n = rng.randint(1, 5)
    yield Case("hidden_int", (c,), {}, data(n, rng.randint(1, 4), c, dim=0))
    yield Case("hidden_two_dims", ((b, c),), {"eps": rng.choice([1e-5, 0.3])}, data(n, a, b, c, dim=0))
    yield Case("hidden_three_dims", ([a, b, c],), {"bias": False}, data(n, a, b, c, dim=0))
    yield Case("hidden_no_affine", ((b, c),), {"elementwise_affine": False}, data(n, b, c, dim=0, scale=1e-3))


def _ln_cases() -> tuple[Case, ...]:
    return (
        Case("default", (6,), {}, data(4, 6, dim=0)),
        Case("sequence", (5,), {}, data(2, 3, 5, dim=0)),  # (batch, tokens, features): every token on its own
        Case("two_dims", ((3, 4),), {}, data(2, 5, 3, 4, dim=0)),
        Case("list_shape", ([2, 3, 4],), {}, data(3, 2, 3, 4, dim=0)),
        Case("no_affine", (5,), {"elementwise_affine": False}, data(4, 5, dim=0)),
        Case("no_bias", ((2, 3),), {"bias": False}, data(3, 2, 3, dim=0)),
        Case("large_eps", (4,), {"eps": 0.5}, data(5, 4, dim=0, scale=0.5)),
        Case("small_variance", (6,), {}, data(4, 6, dim=0, scale=1e-3)),
        Case("no_batch", (5,), {}, data(5, dim=0)),
    )


#: LayerNorm and RMSNorm over the last dim (8): op counts must not grow with the batch or leading dims
LAST_DIM_SCALES = (
    Scale("batch size 4 vs 64", Case("probe", (8,)), data(4, 8, dim=0), data(64, 8, dim=0)),
    Scale("leading dims (4,) vs (6, 16)", Case("probe", (8,)), data(4, 8, dim=0), data(6, 16, 8, dim=0)),
)
LN_CASES = _ln_cases()
register(Spec(
    name="LayerNorm",
    chapter="normalization",
    reference=_randomised(nn.LayerNorm),
    cases=LN_CASES,
    hidden=_hidden_layernorm,
    scales=LAST_DIM_SCALES,
    forbidden_calls=FORBIDDEN_CALLS,
    tolerances=NORM_TOLERANCES,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=LAYERNORM_MISTAKES,
    judges=(_fresh_state(nn.LayerNorm), attributes("normalized_shape", "eps", "elementwise_affine"),
            _autograd_probe(LN_CASES[2], lambda ref, x: layer_norm(ref, x, detach=True))),
    bench=Case("bench", (768,), {}, data(32, 128, 768, dim=0)),
))


# --- GroupNorm ------------------------------------------------------------------------------------

def group_norm(ref: nn.Module, x: Tensor, *, groups: int | None = None, strided: bool = False,
               over_batch: bool = False, affine: bool = True, **options) -> Tensor:
    """GroupNorm's output; `strided` puts channel c in group c % G instead of c // (C / G)."""
    n, c = x.shape[:2]
    g = ref.num_groups if groups is None else groups
    if strided:
        grouped = x.reshape(n, c // g, g, -1).transpose(1, 2)  # (N, G, C/G, rest)
        y = normalise(grouped.reshape(n, g, -1), (2,) if not over_batch else (0, 2), ref.eps, **options)
        y = y.reshape(n, g, c // g, -1).transpose(1, 2).reshape(x.shape)
    else:
        grouped = x.reshape(n, g, -1)  # (N, G, C/G * rest)
        y = normalise(grouped, (2,) if not over_batch else (0, 2), ref.eps, **options).reshape(x.shape)
    return _channel_affine(y, ref, x) if affine else y


def _gn_groups(ref: nn.Module, x: Tensor, groups: int) -> Tensor:
    if ref.num_groups == groups:
        raise ValueError("same as the right answer here")
    return group_norm(ref, x, groups=groups)


def _gn_strided(ref: nn.Module, x: Tensor) -> Tensor:
    if ref.num_groups in (1, ref.num_channels):
        raise ValueError("same as the right answer here")
    return group_norm(ref, x, strided=True)


def _gn_no_affine(ref: nn.Module, x: Tensor) -> Tensor:
    _not_affine(ref)
    return group_norm(ref, x, affine=False)


GROUPNORM_MISTAKES = (
    Mistake("every channel is normalised on its own, as InstanceNorm does; a group is num_channels / num_groups "
            "consecutive channels that share one mean and one variance",
            lambda ref, i: _gn_groups(ref, i.args[0], ref.num_channels)),
    Mistake("channels are put in groups by stride (channel c in group c % num_groups); groups are blocks of "
            "consecutive channels: reshape (N, C, *) to (N, num_groups, C // num_groups * ...)",
            lambda ref, i: _gn_strided(ref, i.args[0])),
    Mistake("all channels are normalised together as one group (that is LayerNorm over (C, *))",
            lambda ref, i: _gn_groups(ref, i.args[0], 1)),
    Mistake("the statistics are also taken over the batch; GroupNorm normalises each sample on its own",
            lambda ref, i: group_norm(ref, i.args[0], over_batch=True)),
    Mistake("the variance is the unbiased one (dividing by n - 1): GroupNorm uses the biased variance, dividing by n",
            lambda ref, i: group_norm(ref, i.args[0], unbiased=True)),
    Mistake("eps is added outside the square root: (x - mean) / (sqrt(var) + eps) instead of "
            "(x - mean) / sqrt(var + eps)",
            lambda ref, i: group_norm(ref, i.args[0], eps_outside=True)),
    Mistake("the weight and bias (one scale and one shift per channel) are not applied",
            lambda ref, i: _gn_no_affine(ref, i.args[0])),
)


def _hidden_groupnorm(rng: random.Random):
    g, per = rng.randint(2, 4), rng.randint(2, 3)
    c = g * per
    n = rng.randint(1, 4)
    yield Case("hidden_groups", (g, c), {}, data(n, c, rng.randint(2, 5), rng.randint(2, 5)))
    yield Case("hidden_sequence", (g, c), {"eps": rng.choice([1e-5, 0.5])}, data(n, c, rng.randint(2, 6)))
    yield Case("hidden_one_group", (1, c), {"affine": False}, data(n, c, rng.randint(2, 4)))
    yield Case("hidden_small_variance", (g, c), {"bias": False}, data(n, c, 3, 3, scale=1e-3))


GN_CASES = (
    Case("default", (2, 6), {}, data(3, 6, 4, 5)),
    Case("sequence", (3, 6), {}, data(2, 6, 7)),  # (N, C, L)
    Case("no_positions", (2, 8), {}, data(4, 8)),  # (N, C): each group is 4 numbers
    Case("one_group", (1, 4), {}, data(2, 4, 3, 3)),  # as LayerNorm over (C, H, W), with per-channel affine
    Case("group_per_channel", (4, 4), {}, data(2, 4, 3, 3)),  # as InstanceNorm, with affine
    Case("three_dims", (2, 4), {}, data(2, 4, 2, 3, 2)),
    Case("no_affine", (3, 6), {"affine": False}, data(2, 6, 3, 3)),
    Case("no_bias", (2, 4), {"bias": False}, data(2, 4, 5)),
    Case("large_eps", (2, 4), {"eps": 0.5}, data(2, 4, 3, scale=0.5)),
    Case("small_variance", (2, 6), {}, data(2, 6, 2, 3, scale=1e-3)),
)
register(Spec(
    name="GroupNorm",
    chapter="normalization",
    reference=_randomised(nn.GroupNorm),
    cases=GN_CASES,
    hidden=_hidden_groupnorm,
    scales=(
        Scale("batch size 4 vs 64", Case("probe", (2, 4)), data(4, 4, 3, 3), data(64, 4, 3, 3)),
        Scale("positions 2x2 vs 12x12", Case("probe", (2, 4)), data(4, 4, 2, 2), data(4, 4, 12, 12)),
    ),
    forbidden_calls=FORBIDDEN_CALLS,
    tolerances=NORM_TOLERANCES,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=GROUPNORM_MISTAKES,
    judges=(
        _fresh_state(nn.GroupNorm),
        attributes("num_groups", "num_channels", "eps", "affine"),
        _loop_probe("groups 2 vs 16", Case("probe_2", (2, 16)), Case("probe_16", (16, 16)),
                    data(4, 16, 3, 3), data(4, 16, 3, 3)),
        _loop_probe("channels 4 vs 32", Case("probe_4", (2, 4)), Case("probe_32", (2, 32)),
                    data(4, 4, 3, 3), data(4, 32, 3, 3)),
        _autograd_probe(GN_CASES[0], lambda ref, x: group_norm(ref, x, detach=True)),
    ),
    bench=Case("bench", (32, 256), {}, data(16, 256, 32, 32)),
))


# --- InstanceNorm2d -------------------------------------------------------------------------------

def instance_norm(ref: nn.Module, x: Tensor, *, dims=(-2, -1), **options) -> Tensor:
    y = normalise(x, dims, ref.eps, **options)
    return _channel_affine(y, ref, x, channel_dim=x.dim() - 3)


def _in_batch_axes(ref: nn.Module, x: Tensor) -> Tensor:
    if x.dim() != 4:
        raise ValueError("no batch dimension")
    return instance_norm(ref, x, dims=(0, 2, 3))


INSTANCENORM_MISTAKES = (
    Mistake("the statistics are shared across the batch (BatchNorm's axes N, H, W); InstanceNorm normalises "
            "every sample's every channel, its own H x W plane, on its own",
            lambda ref, i: _in_batch_axes(ref, i.args[0])),
    Mistake("the statistics are taken over all channels together (LayerNorm's axes C, H, W) instead of "
            "per channel", lambda ref, i: instance_norm(ref, i.args[0], dims=(-3, -2, -1))),
    Mistake("the variance is the unbiased one (dividing by n - 1): InstanceNorm uses the biased variance, "
            "dividing by n", lambda ref, i: instance_norm(ref, i.args[0], unbiased=True)),
    Mistake("eps is added outside the square root: (x - mean) / (sqrt(var) + eps) instead of "
            "(x - mean) / sqrt(var + eps)",
            lambda ref, i: instance_norm(ref, i.args[0], eps_outside=True)),
)


def _hidden_instancenorm(rng: random.Random):
    c = rng.randint(1, 5)
    shape = (c, rng.randint(2, 6), rng.randint(2, 6))
    yield Case("hidden_default", (c,), {}, data(rng.randint(1, 4), *shape))
    yield Case("hidden_affine", (c,), {"affine": True, "eps": rng.choice([1e-5, 0.5])}, data(rng.randint(1, 4), *shape))
    yield Case("hidden_no_batch", (c,), {}, data(*shape, dim=0, scale=rng.choice([1.0, 1e-3])))


IN_CASES = (
    Case("default", (3,), {}, data(4, 3, 5, 6)),
    Case("affine", (3,), {"affine": True}, data(2, 3, 4, 4)),
    Case("affine_no_bias", (2,), {"affine": True, "bias": False}, data(2, 2, 3, 5)),
    Case("large_eps", (2,), {"eps": 0.5}, data(2, 2, 3, 3, scale=0.5)),
    Case("small_variance", (3,), {}, data(2, 3, 4, 4, scale=1e-3)),
    Case("no_batch", (3,), {"affine": True}, data(3, 4, 5, dim=0)),  # (C, H, W): torch accepts it unbatched
    Case("batch_of_one", (4,), {}, data(1, 4, 2, 3)),
)
register(Spec(
    name="InstanceNorm2d",
    chapter="normalization",
    reference=_randomised(nn.InstanceNorm2d),
    cases=IN_CASES,
    hidden=_hidden_instancenorm,
    scales=(
        Scale("batch size 4 vs 64", Case("probe", (3,)), data(4, 3, 3, 3), data(64, 3, 3, 3)),
        Scale("positions 2x2 vs 12x12", Case("probe", (3,)), data(4, 3, 2, 2), data(4, 3, 12, 12)),
    ),
    forbidden_calls=FORBIDDEN_CALLS,
    tolerances=NORM_TOLERANCES,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=INSTANCENORM_MISTAKES,
    judges=(
        _fresh_state(nn.InstanceNorm2d),
        attributes("num_features", "eps", "momentum", "affine", "track_running_stats"),
        _loop_probe("channels 2 vs 24", Case("probe_2", (2,)), Case("probe_24", (24,)),
                    data(4, 2, 3, 3), data(4, 24, 3, 3)),
        _autograd_probe(IN_CASES[1], lambda ref, x: instance_norm(ref, x, detach=True)),
    ),
    bench=Case("bench", (64,), {}, data(16, 64, 64, 64)),
))


# --- RMSNorm --------------------------------------------------------------------------------------

def rms_norm(ref: nn.Module, x: Tensor, *, dims=None, eps: float | None = None, eps_outside: bool = False,
             l2: bool = False, center: bool = False, detach: bool = False, affine: bool = True) -> Tensor:
    """RMSNorm's output; `center=True` is LayerNorm without its bias, `l2` divides by the L2 norm."""
    dims = _last_dims(ref) if dims is None else dims
    if eps is None:
        eps = ref.eps if ref.eps is not None else torch.finfo(x.dtype).eps
    if l2:
        y = x / (x.pow(2).sum(tuple(dims), keepdim=True) + eps).sqrt()
    else:
        y = normalise(x, dims, eps, eps_outside=eps_outside, center=center, detach=detach)
    return y * ref.weight if ref.weight is not None and affine else y


def _default_eps(ref: nn.Module, x: Tensor, eps: float) -> Tensor:
    if ref.eps is not None:
        raise ValueError("eps is given")
    return rms_norm(ref, x, eps=eps)


def _rms_no_weight(ref: nn.Module, x: Tensor) -> Tensor:
    _not_affine(ref)
    return rms_norm(ref, x, affine=False)


RMSNORM_MISTAKES = (
    Mistake("the mean is subtracted first, as LayerNorm does; RMSNorm divides x by its root mean square "
            "sqrt(mean(x^2) + eps) without centring it",
            lambda ref, i: rms_norm(ref, i.args[0], center=True)),
    Mistake("eps=None is taken as 0; it means torch.finfo(x.dtype).eps (about 1.19e-07 in float32, 2.2e-16 "
            "in float64)", lambda ref, i: _default_eps(ref, i.args[0], 0.0)),
    *(Mistake(f"eps=None is taken as {e:g}; it means torch.finfo(x.dtype).eps (about 1.19e-07 in float32, "
              "2.2e-16 in float64)", lambda ref, i, e=e: _default_eps(ref, i.args[0], e))
      for e in (1e-5, 1e-6, 1e-8)),
    Mistake("only the last dimension is normalised; with a normalized_shape of several dims, the mean of x^2 "
            "is taken over all of the last len(normalized_shape) dims together",
            lambda ref, i: _last_dim_only(ref, i.args[0], rms_norm)),
    Mistake("eps is added outside the square root: x / (sqrt(mean(x^2)) + eps) instead of x / sqrt(mean(x^2) + eps)",
            lambda ref, i: rms_norm(ref, i.args[0], eps_outside=True)),
    Mistake("x is divided by its L2 norm sqrt(sum(x^2)); the root mean square is sqrt(mean(x^2)), the L2 norm "
            "divided by sqrt(number of elements)", lambda ref, i: rms_norm(ref, i.args[0], l2=True)),
    Mistake("the weight (the learnable scale) is not applied", lambda ref, i: _rms_no_weight(ref, i.args[0])),
)


def _hidden_rmsnorm(rng: random.Random):
    a, b = rng.randint(3, 6), rng.randint(3, 6)
    n = rng.randint(1, 5)
    yield Case("hidden_int", (b,), {}, data(n, rng.randint(1, 4), b, dim=0))
    yield Case("hidden_two_dims", ((a, b),), {"eps": rng.choice([1e-6, 0.3])}, data(n, a, b, dim=0))
    yield Case("hidden_tiny_inputs", (b,), {"elementwise_affine": rng.random() < 0.5}, data(n, b, dim=0, scale=1e-4))


RMS_CASES = (
    Case("default", (6,), {}, data(4, 6, dim=0)),
    Case("sequence", (5,), {}, data(2, 3, 5, dim=0)),
    Case("two_dims", ((3, 4),), {}, data(2, 5, 3, 4, dim=0)),
    Case("no_affine", (5,), {"elementwise_affine": False}, data(4, 5, dim=0)),
    Case("eps_given", (4,), {"eps": 0.5}, data(5, 4, dim=0, scale=0.5)),
    # mean(x^2) ~ 1e-8: eps=None's finfo(float32).eps = 1.19e-7 matters, a guessed 1e-6 or 1e-5 more so
    Case("tiny_inputs", (6,), {}, data(4, 6, dim=0, scale=1e-4)),
    Case("no_batch", ([2, 3],), {}, data(2, 3, dim=0)),
)
register(Spec(
    name="RMSNorm",
    chapter="normalization",
    reference=_randomised(nn.RMSNorm),
    cases=RMS_CASES,
    hidden=_hidden_rmsnorm,
    scales=LAST_DIM_SCALES,
    forbidden_calls=FORBIDDEN_CALLS,
    tolerances=NORM_TOLERANCES,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=RMSNORM_MISTAKES,
    judges=(_fresh_state(nn.RMSNorm), attributes("normalized_shape", "eps", "elementwise_affine"),
            _autograd_probe(RMS_CASES[2], lambda ref, x: rms_norm(ref, x, detach=True))),
    bench=Case("bench", (768,), {}, data(32, 128, 768, dim=0)),
))
