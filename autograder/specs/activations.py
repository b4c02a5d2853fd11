"""Activations: elementwise non-linearities, softmax and log-softmax, and Identity.

Simple layers with sharp edges, which is what these specs probe:
- numerics: every input holds large magnitudes (±1000, ±710 which overflows exp in float64,
  ±88.8 which overflows it in float32), the softplus threshold, zeros and tiny values around the
  kinks; outputs AND gradients must be finite where torch's are (a discarded `torch.where` branch
  that overflows still poisons the gradient with NaN);
- kinks: torch's gradient at exactly 0 (ReLU 0, LeakyReLU negative_slope, ELU alpha, Sigmoid 0.25,
  Tanh 1), judged on its own so that feedback names it;
- in-place semantics: `inplace=True` writes into its input and returns it, `inplace=False` leaves
  it untouched (`judges.aliasing`); the engine passes `leaf.clone()` (`clone_inputs`) so that
  in-place ops are legal under autograd;
- the arguments are kept as torch's attributes (`judges.attributes`).

"torch's own implementation" of a layer is its module, its functional and tensor forms, the aten
ops behind them, and exact aliases (`F.threshold` for ReLU, `torch.special.expit` for Sigmoid,
`logsumexp` for the softmaxes, whose point is the log-sum-exp trick). Building blocks stay
allowed: `exp`, `log1p`, `erf`, `where`, and `torch.sigmoid` / `torch.tanh` in the layers that are
not Sigmoid / Tanh (SiLU, GELU's tanh form).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..judges import aliasing, attributes
from ..report import Result
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, randn, register
from ..student import StudentError

#: fixed values every elementwise input starts with: overflow points of exp in float64 (710) and
#: float32 (88.8), Softplus's default threshold (20) and both sides of it, and the kink at 0
EDGES = (-1000.0, -710.0, -100.0, -88.8, -20.5, -20.0, -3.0, -1.0, -0.5, -1e-3, 0.0,
         1e-3, 0.5, 1.0, 3.0, 20.0, 20.5, 88.8, 100.0, 710.0, 1000.0)


def edges(*shape: int, scale: float = 3.0) -> Callable[[Maker], Inputs]:
    """Normal values times `scale`, the first of them replaced by `EDGES` (shape must hold 21+)."""

    def inputs(make: Maker) -> Inputs:
        x = make.randn(*shape, scale=scale)
        k = min(len(EDGES), x.numel())
        x.view(-1)[:k] = make.tensor(EDGES[:k])
        return call(x)

    return inputs


def logits(*shape: int, dim: int = -1, masked: bool = False) -> Callable[[Maker], Inputs]:
    """Logits along `dim` with rows (slices along `dim`) of extreme values: a row near +1000 whose
    naive exponentials overflow, a row near -1000 whose naive exponentials all underflow to 0, a
    row with +1000 and -1000 together (log(softmax) underflows to -inf), a constant row, then normal
    rows. `masked` puts -inf in some entries (never a whole row), as attention masks do."""
    special = [[1000.0, 999.0, 998.0, 0.0], [-1000.0, -999.5, -1001.0, -1000.0],
               [1000.0, 0.0, -1000.0, 5.0], [7.0, 7.0, 7.0, 7.0]]

    def inputs(make: Maker) -> Inputs:
        x = make.randn(*shape, scale=3.0).movedim(dim, -1).contiguous()  # (..., K): rows along the last dim
        rows = x.view(-1, x.shape[-1])  # (rows, K), sharing x's memory
        k = min(x.shape[-1], 4)
        for r, row in enumerate(special[: rows.shape[0]]):
            rows[r, :k] = make.tensor(row[:k])
        if masked:
            rows[-1, 0] = float("-inf")
            rows[0, -1] = float("-inf")
        return call(x.movedim(-1, dim).contiguous())

    return inputs


# --- forbidden calls -------------------------------------------------------------------------------

def aten_names(*ops: str) -> set[str]:
    """The names aten ops take in a trace when called directly: the packet and every overload."""
    names = set()
    for op in ops:
        names.add(f"aten.{op}")
        packet = getattr(torch.ops.aten, op, None)
        for overload in packet.overloads() if packet is not None else ("default",):
            names.add(f"aten.{op}.{overload}")
    return names


def forbidden_names(*names: str, aten: tuple[str, ...] = ()) -> frozenset[str]:
    """Resolved names: short forms `F.x`, `T.x` and `torch.x` expanded."""
    full = {n.replace("F.", "torch.nn.functional.", 1).replace("T.", "torch.Tensor.", 1) for n in names}
    return frozenset(full | aten_names(*aten))


RELU_CALLS = forbidden_names(
    "torch.relu", "torch.relu_", "T.relu", "T.relu_", "F.relu", "F.relu_", "F.threshold", "F.threshold_",
    "torch.threshold", "torch.threshold_", "F.leaky_relu", "F.leaky_relu_", "leaky_relu", "leaky_relu_", "F.hardtanh",
    "F.hardtanh_", "F.relu6", "F.prelu", "torch.prelu", "F.rrelu", "F.rrelu_",
    aten=("relu", "relu_", "threshold", "threshold_", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_", "prelu",
          "_prelu_kernel"))
LEAKY_CALLS = forbidden_names(
    "F.leaky_relu", "F.leaky_relu_", "leaky_relu", "leaky_relu_", "F.prelu", "torch.prelu", "F.rrelu", "F.rrelu_",
    "torch.rrelu", "torch.rrelu_",
    aten=("leaky_relu", "leaky_relu_", "prelu", "_prelu_kernel", "rrelu", "rrelu_"))
ELU_CALLS = forbidden_names(
    "F.elu", "F.elu_", "elu", "elu_", "F.celu", "F.celu_", "torch.celu", "torch.celu_", "F.selu", "F.selu_",
    "torch.selu", "torch.selu_",
    aten=("elu", "elu_", "celu", "celu_", "selu", "selu_"))
GELU_CALLS = forbidden_names("F.gelu", "gelu", "gelu_", aten=("gelu", "gelu_"))
SILU_CALLS = forbidden_names("F.silu", "silu", "silu_", aten=("silu", "silu_"))
SIGMOID_CALLS = forbidden_names(
    "torch.sigmoid", "torch.sigmoid_", "T.sigmoid", "T.sigmoid_", "torch.special.expit", "F.logsigmoid",
    aten=("sigmoid", "sigmoid_", "special_expit", "log_sigmoid_forward"))
TANH_CALLS = forbidden_names("torch.tanh", "torch.tanh_", "T.tanh", "T.tanh_", aten=("tanh", "tanh_"))
SOFTPLUS_CALLS = forbidden_names("F.softplus", "softplus", aten=("softplus",))
SOFTMAX_CALLS = forbidden_names(
    "torch.softmax", "T.softmax", "F.softmax", "torch.special.softmax", "F.softmin", "_VariableFunctionsClass._softmax",
    "torch.log_softmax", "T.log_softmax", "F.log_softmax", "torch.special.log_softmax",
    "_VariableFunctionsClass._log_softmax", "torch.logsumexp", "T.logsumexp", "torch.special.logsumexp",
    "F.gumbel_softmax",
    aten=("softmax", "_softmax", "log_softmax", "_log_softmax", "logsumexp", "special_softmax", "special_log_softmax",
          "special_logsumexp"))


# --- judges --------------------------------------------------------------------------------------

def kinks(points: tuple[float, ...], hint: str) -> Callable[[object], Iterator[Result]]:
    """Judge (part "backward"): the gradient at exactly `points` equals torch's. The engine's own
    comparison already fails such a layer; this names the cause."""

    def judge(ctx) -> Iterator[Result]:
        if "backward" not in ctx.parts:
            return
        for case in ctx.cases:
            where = case.label(ctx.spec.name)
            try:
                stu = ctx.build(case, seed=0)
            except Exception:  # noqa: BLE001 - reported by the engine
                continue
            x = torch.tensor(points, dtype=torch.float64, device=ctx.device)
            leaf = x.clone().requires_grad_(True)
            ctx.reference(case)(leaf.clone()).sum().backward()
            want = leaf.grad
            try:
                out = stu.forward(call(x), leaves=True, clone=True)
                if len(out.requires_grad) != 1 or not out.requires_grad[0]:
                    continue  # reported by the engine
                got = stu.backward([0], [torch.ones_like(x)]).inputs[0]
            except Exception:  # noqa: BLE001 - reported by the engine
                continue
            bad = [i for i in range(len(points)) if got is None or not torch.isclose(got[i], want[i], 1e-7, 1e-9)]
            detail = ""
            if bad:
                i = bad[0]
                seen = "no gradient" if got is None else f"{got[i].item():.4g}"
                detail = (f"at x = {points[i]:g} the gradient is {seen}, torch's is {want[i].item():.4g}: {hint}")
            yield Result("backward", where, not bad, detail, check="kink")
            if bad:
                return  # one line names the cause; the engine's own lines list every case

    return judge


def inplace_backward(ctx) -> Iterator[Result]:
    """Judge (part "backward"): with inplace=True, name autograd's in-place error. The engine reports
    the raw error; this says what it means and how to avoid it."""
    if "backward" not in ctx.parts:
        return
    for case in ctx.cases:
        if not getattr(ctx.reference(case), "inplace", False):
            continue
        where = case.label(ctx.spec.name)
        try:
            stu = ctx.build(case, seed=0)
        except Exception:  # noqa: BLE001 - reported by the engine
            continue
        x = torch.linspace(-3, 3, 7, dtype=torch.float64, device=ctx.device)
        try:
            out = stu.forward(call(x), leaves=True, clone=True)
            if len(out.requires_grad) != 1 or not out.requires_grad[0]:
                continue  # reported by the engine
            stu.backward([0], [torch.ones_like(x)])
        except StudentError as exc:
            if exc.is_a("RuntimeError") and "modified by an inplace operation" in exc.message:
                yield Result("backward", where, False, (
                    "backward fails after your in-place write: an earlier op of your forward saved the input for "
                    "its own backward (clamp, *, / and most ops do), and the write overwrote it. Compute with "
                    "ops that save only a mask or their output (torch.where, masked_fill, exp), or with in-place "
                    "ops whose backward autograd handles (masked_fill_, mul_)"), check="in-place autograd")
                return
        except Exception:  # noqa: BLE001 - reported by the engine
            continue


# --- the elementwise layers ------------------------------------------------------------------------

def elementwise(name: str, reference: type, cases: tuple[Case, ...], hidden, forbidden: frozenset[str],
                modules: tuple[type, ...], mistakes: tuple[Mistake, ...] = (), attrs: tuple[str, ...] = (),
                kink: tuple[tuple[float, ...], str] | None = None) -> Spec:
    judges = [aliasing()]
    if "inplace" in attrs:
        judges.append(inplace_backward)
    if attrs:
        judges.append(attributes(*attrs))
    if kink:
        judges.append(kinks(*kink))
    scale_case = cases[0]
    return Spec(
        name=name,
        chapter="activations",
        reference=reference,
        cases=cases,
        hidden=hidden,
        scales=(Scale("batch 4 vs 256", Case("scale", scale_case.args, scale_case.kwargs), randn(4, 8),
                      randn(256, 8)),
                Scale("shape (8,) vs (6, 16, 16)", Case("scale", scale_case.args, scale_case.kwargs), randn(8),
                      randn(6, 16, 16))),
        forbidden_calls=forbidden,
        forbidden_modules=modules,
        mistakes=mistakes,
        clone_inputs=True,
        judges=tuple(judges),
        bench=Case("bench", scale_case.args, scale_case.kwargs, randn(256, 4096)),
    )


def _hidden_shape(rng: random.Random) -> tuple[int, ...]:
    """A random shape holding at least len(EDGES) elements, 1 to 4 dims."""
    while True:
        shape = tuple(rng.randint(1, 7) for _ in range(rng.randint(1, 4)))
        if math.prod(shape) >= len(EDGES):
            return shape


def _inplace_hidden(**draws: Callable[[random.Random], object]):
    """Hidden cases: the drawn arguments, each with inplace False and True, on a fresh shape."""

    def hidden(rng: random.Random):
        kwargs = {k: draw(rng) for k, draw in draws.items()}
        for inplace in (False, True):
            yield Case(f"hidden_inplace_{inplace}".lower(), (), {**kwargs, "inplace": inplace},
                       edges(*_hidden_shape(rng)))

    return hidden


def _plain_hidden(**draws: Callable[[random.Random], object]):
    """Hidden cases: one on a fresh shape, and with arguments, a second one drawn and given
    positionally (`draws` in constructor order), which keeps the two signatures apart."""

    def hidden(rng: random.Random):
        kwargs = {k: draw(rng) for k, draw in draws.items()}
        yield Case("hidden_0", (), kwargs, edges(*_hidden_shape(rng)))
        if draws:
            args = tuple(draw(rng) for draw in draws.values())
            yield Case("hidden_1", args, {}, edges(*_hidden_shape(rng)))

    return hidden


def _gelu_hidden(rng: random.Random):
    """Both forms every time, on fresh shapes (one given positionally)."""
    yield Case("hidden_none", (), {"approximate": "none"}, edges(*_hidden_shape(rng)))
    yield Case("hidden_tanh", ("tanh",), {}, edges(*_hidden_shape(rng)))


def _slope(rng: random.Random) -> float:
    return round(rng.uniform(0.02, 0.5), 3)


def _x(i: Inputs) -> torch.Tensor:
    return i.args[0]


def _leaky(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.where(x > 0, x, x * slope)


def _softplus_exact(x: torch.Tensor, beta: float) -> torch.Tensor:
    """log(1 + exp(beta x)) / beta computed stably, with no threshold."""
    bx = beta * x
    return (bx.clamp(min=0) + torch.log1p(torch.exp(-bx.abs()))) / beta


register(
    elementwise(
        "ReLU", nn.ReLU,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("inplace", (), {"inplace": True}, edges(4, 8)),
            Case("inplace_4d", (True,), {}, edges(2, 3, 2, 4)),  # positional, as nn.ReLU(True)
        ),
        hidden=_inplace_hidden(),
        forbidden=RELU_CALLS,
        modules=(nn.ReLU, nn.ReLU6, nn.Threshold, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh),
        attrs=("inplace",),
        kink=((0.0, 1.0, -1.0), "torch's ReLU has gradient 0 at exactly x = 0 (x.clamp(min=0) passes 1 there and "
              "torch.maximum(x, 0) passes 0.5): keep x only where x > 0, e.g. torch.where(x > 0, x, 0)"),
    ),
    elementwise(
        "LeakyReLU", nn.LeakyReLU,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("negative_slope", (0.2,), {}, edges(4, 8)),
            Case("inplace", (), {"inplace": True}, edges(4, 8)),
            Case("slope_inplace", (), {"negative_slope": 0.5, "inplace": True}, edges(3, 2, 5)),
        ),
        hidden=_inplace_hidden(negative_slope=_slope),
        forbidden=LEAKY_CALLS,
        modules=(nn.LeakyReLU, nn.PReLU, nn.RReLU),
        mistakes=(
            Mistake("the slope is 0.1; torch's default negative_slope is 0.01", lambda r, i: _leaky(_x(i), 0.1)),
            Mistake("negative_slope is ignored (0.01 is used whatever its value)", lambda r, i: _leaky(_x(i), 0.01)),
            Mistake("negative inputs become 0, as in ReLU: multiply them by negative_slope",
                    lambda r, i: _leaky(_x(i), 0.0)),
        ),
        attrs=("negative_slope", "inplace"),
        kink=((0.0, 1.0, -1.0), "torch's LeakyReLU has gradient negative_slope at exactly x = 0: keep x unchanged "
              "only where x > 0"),
    ),
    elementwise(
        "ELU", nn.ELU,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("alpha", (0.5,), {}, edges(4, 8)),
            Case("alpha_2", (), {"alpha": 2.0}, edges(4, 8)),
            Case("inplace", (), {"inplace": True}, edges(4, 8)),
            Case("alpha_inplace", (1.5, True), {}, edges(2, 3, 4)),
        ),
        hidden=_inplace_hidden(alpha=lambda rng: round(rng.uniform(0.2, 3.0), 3)),
        forbidden=ELU_CALLS,
        modules=(nn.ELU, nn.CELU, nn.SELU),
        mistakes=(
            Mistake("alpha is ignored (alpha = 1 is used)", lambda r, i: F.elu(_x(i), 1.0)),
            Mistake("the negative branch is alpha * exp(x), without the - 1",
                    lambda r, i: torch.where(_x(i) > 0, _x(i), r.alpha * torch.exp(_x(i)))),
        ),
        attrs=("alpha", "inplace"),
        kink=((0.0, 1.0, -1.0), "torch's ELU has gradient alpha at exactly x = 0: keep x unchanged only where x > 0"),
    ),
    elementwise(
        "GELU", nn.GELU,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("tanh", (), {"approximate": "tanh"}, edges(4, 8)),
            Case("none_3d", ("none",), {}, edges(2, 5, 4)),
        ),
        hidden=_gelu_hidden,
        forbidden=GELU_CALLS,
        modules=(nn.GELU,),
        mistakes=(
            Mistake("the tanh approximation is used although approximate='none': the exact GELU is "
                    "x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))", lambda r, i: F.gelu(_x(i), approximate="tanh")),
            Mistake("the exact erf form is used although approximate='tanh'", lambda r, i: F.gelu(_x(i))),
            Mistake("the tanh approximation lacks its 0.044715 * x**3 term",
                    lambda r, i: 0.5 * _x(i) * (1 + torch.tanh(math.sqrt(2 / math.pi) * _x(i)))),
            Mistake("the sigmoid approximation x * sigmoid(1.702 x) is used",
                    lambda r, i: _x(i) * torch.sigmoid(1.702 * _x(i))),
        ),
        attrs=("approximate",),
    ),
    elementwise(
        "SiLU", nn.SiLU,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("inplace", (), {"inplace": True}, edges(4, 8)),
            Case("inplace_3d", (True,), {}, edges(2, 3, 4)),
        ),
        hidden=_inplace_hidden(),
        forbidden=SILU_CALLS,
        modules=(nn.SiLU,),
        mistakes=(Mistake("the output is sigmoid(x); SiLU is x * sigmoid(x)", lambda r, i: torch.sigmoid(_x(i))),),
        attrs=("inplace",),
    ),
    elementwise(
        "Sigmoid", nn.Sigmoid,
        cases=(
            Case("default", (), {}, edges(2, 3, 2, 4)),
        ),
        hidden=_plain_hidden(),
        forbidden=SIGMOID_CALLS,
        modules=(nn.Sigmoid, nn.LogSigmoid, nn.SiLU),
        mistakes=(Mistake("the sign is flipped: sigmoid(x) = 1 / (1 + exp(-x))", lambda r, i: torch.sigmoid(-_x(i))),),
        kink=((0.0, 1.0, -1.0), "torch's Sigmoid has gradient 0.25 at x = 0; x.abs() has gradient 0 at 0 in torch, "
              "so a formula through exp(-x.abs()) loses it there: pick the sign with torch.where(x >= 0, -x, x)"),
    ),
    elementwise(
        "Tanh", nn.Tanh,
        cases=(
            Case("default", (), {}, edges(2, 3, 2, 4)),
        ),
        hidden=_plain_hidden(),
        forbidden=TANH_CALLS,
        modules=(nn.Tanh, nn.Tanhshrink, nn.Hardtanh),
        mistakes=(
            Mistake("the output is 2 * sigmoid(x) - 1, which is tanh(x / 2): the argument must be 2x",
                    lambda r, i: torch.tanh(_x(i) / 2)),
            Mistake("the output is sigmoid(x), not tanh(x)", lambda r, i: torch.sigmoid(_x(i))),
        ),
        kink=((0.0, 1.0, -1.0), "torch's Tanh has gradient 1 at x = 0; x.abs() has gradient 0 at 0 in torch, so "
              "a formula through exp(-2 * x.abs()) loses it there: pick the sign with torch.where(x >= 0, ...)"),
    ),
    elementwise(
        "Softplus", nn.Softplus,
        cases=(
            Case("default", (), {}, edges(4, 8)),
            Case("beta", (2.0,), {}, edges(4, 8)),
            Case("threshold", (), {"threshold": 2.0}, edges(4, 8)),
            Case("beta_threshold", (), {"beta": 0.5, "threshold": 3.0}, edges(4, 8, scale=8.0)),
            Case("beta_threshold_3d", (3.0, 4.0), {}, edges(2, 3, 5)),
        ),
        hidden=_plain_hidden(beta=lambda rng: round(rng.uniform(0.3, 3.0), 2),
                             threshold=lambda rng: round(rng.uniform(1.0, 20.0), 1)),
        forbidden=SOFTPLUS_CALLS,
        modules=(nn.Softplus,),
        mistakes=(
            Mistake("the threshold is ignored: where beta * x > threshold torch returns x itself, and "
                    "log(1 + exp(beta * x)) overflows there in float32",
                    lambda r, i: torch.log1p(torch.exp(r.beta * _x(i))) / r.beta),
            Mistake("the threshold is ignored: where beta * x > threshold torch returns x itself",
                    lambda r, i: _softplus_exact(_x(i), r.beta)),
            Mistake("x is compared with the threshold; torch compares beta * x",
                    lambda r, i: torch.where(_x(i) > r.threshold, _x(i), _softplus_exact(_x(i), r.beta))),
            Mistake("beta is ignored", lambda r, i: F.softplus(_x(i), 1.0, r.threshold)),
            Mistake("the result is not divided by beta",
                    lambda r, i: torch.where(r.beta * _x(i) > r.threshold, _x(i), _softplus_exact(_x(i), r.beta)
                                             * r.beta)),
        ),
        attrs=("beta", "threshold"),
        kink=((0.0, 1.0, -1.0), "Softplus is smooth: its gradient at x = 0 is sigmoid(0) = 0.5 whatever beta. A "
              "formula through x.clamp(min=0) or x.abs() inherits torch's conventions at their kink (clamp passes 1 "
              "at its bound, abs 0) and is off there; log1p(exp(...)) of beta * x, clamped to the threshold, has no "
              "kink at 0"),
    ),
)


# --- softmax and log-softmax ------------------------------------------------------------------------

def _naive_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)


def _global_max_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    e = torch.exp(x - x.max())
    return e / e.sum(dim, keepdim=True)


def _softmax_mistakes(log: bool) -> tuple[Mistake, ...]:
    f = torch.log_softmax if log else torch.softmax
    wrong_dims = (
        Mistake("the normalisation runs along the last dimension instead of dim", lambda r, i: f(_x(i), -1)),
        Mistake("the normalisation runs along dimension 1 instead of dim", lambda r, i: f(_x(i), 1)),
        Mistake("the normalisation runs along dimension 0 instead of dim", lambda r, i: f(_x(i), 0)),
        Mistake("the sum runs over the whole tensor instead of along dim",
                lambda r, i: (torch.log if log else torch.exp)(
                    torch.log_softmax(_x(i).flatten(), 0).reshape(_x(i).shape))),
    )
    if not log:
        return (
            Mistake("the exponentials overflow: exp(1000) is inf and inf / inf is NaN; subtract the maximum "
                    "along dim first (softmax(x) = softmax(x - max))", lambda r, i: _naive_softmax(_x(i), r.dim)),
            Mistake("the maximum is taken over the whole tensor rather than along dim: rows far below it "
                    "underflow to 0 / 0", lambda r, i: _global_max_softmax(_x(i), r.dim)),
            *wrong_dims,
        )
    return (
        Mistake("log is taken of the softmax, which underflows to 0 for logits far below the largest "
                "(log 0 = -inf): use x - max - log(sum(exp(x - max)))",
                lambda r, i: torch.log(torch.softmax(_x(i), r.dim))),
        Mistake("the exponentials overflow: exp(1000) is inf; subtract the maximum along dim first "
                "(the log-sum-exp trick)", lambda r, i: torch.log(_naive_softmax(_x(i), r.dim))),
        Mistake("the exponentials overflow: exp(1000) is inf; subtract the maximum along dim before "
                "exp and add it back after log (the log-sum-exp trick)",
                lambda r, i: _x(i) - torch.log(torch.exp(_x(i)).sum(r.dim, keepdim=True))),
        Mistake("the maximum is taken over the whole tensor rather than along dim: rows far below it "
                "underflow to log 0", lambda r, i: torch.log(_global_max_softmax(_x(i), r.dim))),
        *wrong_dims,
    )


def _softmax_hidden(rng: random.Random):
    for i in range(2):
        ndim = rng.randint(1, 4)
        shape = [rng.randint(2, 5) for _ in range(ndim)]
        dim = rng.randrange(-ndim, ndim)
        shape[dim] = rng.randint(4, 9)
        args, kwargs = ((dim,), {}) if i else ((), {"dim": dim})  # distinct signatures in feedback
        yield Case(f"hidden_{i}", args, kwargs, logits(*shape, dim=dim, masked=bool(i)))


def softmax_spec(name: str, reference: type, log: bool) -> Spec:
    return Spec(
        name=name,
        chapter="activations",
        reference=reference,
        cases=(
            Case("dim_1", (1,), {}, logits(5, 6, dim=1)),
            Case("dim_0", (), {"dim": 0}, logits(6, 5, dim=0)),
            Case("dim_last_3d", (), {"dim": -1}, logits(2, 4, 6, dim=-1)),
            Case("dim_1_3d", (), {"dim": 1}, logits(2, 6, 3, dim=1)),  # (N, C, L): over channels
            Case("dim_0_1d", (0,), {}, logits(7, dim=0)),
            Case("masked", (-1,), {}, logits(5, 6, dim=-1, masked=True)),  # -inf entries, as attention masks
        ),
        hidden=_softmax_hidden,
        scales=(Scale("batch 4 vs 256", Case("scale", (), {"dim": 1}), randn(4, 10), randn(256, 10)),
                Scale("positions 4 vs 64", Case("scale", (), {"dim": 1}), randn(2, 10, 4), randn(2, 10, 64))),
        forbidden_calls=SOFTMAX_CALLS,
        forbidden_modules=(nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d),
        mistakes=_softmax_mistakes(log),
        clone_inputs=True,
        judges=(aliasing(), attributes("dim")),
        bench=Case("bench", (), {"dim": -1}, randn(256, 4096)),
    )


register(softmax_spec("Softmax", nn.Softmax, log=False), softmax_spec("LogSoftmax", nn.LogSoftmax, log=True))


# --- Identity --------------------------------------------------------------------------------------

def _identity_hidden(rng: random.Random):
    shape = tuple(rng.randint(1, 6) for _ in range(rng.randint(1, 4)))
    yield Case("hidden_args", (rng.randint(1, 100),), {"anything": rng.random()}, randn(*shape))


register(Spec(
    name="Identity",
    chapter="activations",
    reference=nn.Identity,
    cases=(
        Case("default", (), {}, edges(2, 3, 4, 4)),
        Case("ignored_args", (54,), {"unused_argument1": 0.1, "unused_argument2": False}, randn(3, 5)),
    ),
    hidden=_identity_hidden,
    scales=(Scale("batch 4 vs 256", Case("scale"), randn(4, 8), randn(256, 8)),),
    forbidden_modules=(nn.Identity,),
    clone_inputs=True,
    judges=(aliasing(),),
    bench=Case("bench", (), {}, randn(256, 4096)),
))
