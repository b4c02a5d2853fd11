"""Embedding and EmbeddingBag: lookup tables of learned vectors, indexed by integer ids.

`Embedding(num_embeddings, embedding_dim)` maps ids of any shape (*) to rows of its `weight`
(num_embeddings, embedding_dim): (*) -> (*, embedding_dim). `EmbeddingBag` reduces the rows of
each bag of ids (a row of a 2-d input, or a slice of a 1-d input cut by `offsets`) with a sum, a
mean or a max: -> (B, embedding_dim). Their inputs are integer tensors (long or int), so the engine
differentiates with respect to the weight (and `per_sample_weights`) only.

Three judges cover what the engine's comparisons cannot name or reach:
- `padding_judge`: `padding_idx` is stored as torch stores it (a negative one counted from the
  end), its row starts as zeros, and it gets no gradient;
- `from_pretrained_judge`: the class method builds the layer around a given matrix, frozen or
  not, keeping a nonzero padding row as it is (only its gradient is blocked);
- `out_of_range_judge`: an id outside [0, num_embeddings), -1 included, raises an IndexError or
  a RuntimeError, as torch's does (on the CPU: on a GPU an out-of-range index is a device-side
  assert that breaks the whole process, torch's own layer included).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .. import compare
from ..engine import raised
from ..report import Result
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, register, seed_of
from ..student import Fault, StudentError

# --- what must not be called --------------------------------------------------------------------

_EMBEDDING = re.compile(r"embedding", re.IGNORECASE)


def _torch_embedding_calls() -> frozenset[str]:
    """Every torch function and aten op that implements an embedding lookup or bag, as the tracer
    names them (`torch.embedding`, `_VariableFunctionsClass._embedding_bag`, `aten.embedding_bag`,
    `aten.embedding_bag.padding_idx`, ...)."""
    names = {f"torch.nn.functional.{n}" for n in dir(F) if _EMBEDDING.search(n)}
    names |= {f"torch.{n}" for n in dir(torch) if _EMBEDDING.search(n)}
    names |= {f"{prefix}.{n}" for n in dir(torch._C._VariableFunctions) if _EMBEDDING.search(n)
              for prefix in ("torch", "_VariableFunctionsClass")}
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and _EMBEDDING.search(op):
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


FORBIDDEN_CALLS = _torch_embedding_calls()
FORBIDDEN_MODULES = (nn.Embedding, nn.EmbeddingBag)


# --- inputs -------------------------------------------------------------------------------------

def ids(n: int, *shape: int, dtype: torch.dtype = torch.long, pad: int | None = None, low: int = 0,
        high: int | None = None) -> Callable[[Maker], Inputs]:
    """Random ids in [low, high or n) of `shape`; with `pad`, every third id is that padding id."""

    def inputs(make: Maker) -> Inputs:
        t = make.randint(low, n if high is None else high, *shape, dtype=dtype)
        if pad is not None:
            t.view(-1)[::3] = pad
        return call(t)

    return inputs


def bags(n: int, lengths: Iterable[int], *, dtype: torch.dtype = torch.long, offsets_dtype: torch.dtype | None = None,
         pad: int | None = None, weights: bool = False, last: bool = False) -> Callable[[Maker], Inputs]:
    """A 1-d input of ids in [0, n) cut into bags of `lengths` (0: an empty bag) by `offsets`, the
    start of each bag (plus the total length when `last`, for include_last_offset=True); with `pad`,
    every third id is the padding id; with `weights`, a per_sample_weights of the input's length."""
    lengths = list(lengths)

    def inputs(make: Maker) -> Inputs:
        total = sum(lengths)
        t = make.randint(0, n, total, dtype=dtype)
        if pad is not None:
            t[::3] = pad
        starts = [sum(lengths[:i]) for i in range(len(lengths))] + ([total] if last else [])
        offsets = make.tensor(starts, dtype=offsets_dtype or dtype)
        kwargs = {"per_sample_weights": make.randn(total)} if weights else {}
        return call(t, offsets, **kwargs)

    return inputs


def rows(n: int, b: int, length: int, *, dtype: torch.dtype = torch.long, pad: int | None = None,
         weights: bool = False) -> Callable[[Maker], Inputs]:
    """A 2-d input (b, length): b bags of `length` ids each, no offsets."""

    def inputs(make: Maker) -> Inputs:
        t = make.randint(0, n, b, length, dtype=dtype)
        if pad is not None:
            t.view(-1)[::3] = pad
        kwargs = {"per_sample_weights": make.randn(b, length)} if weights else {}
        return call(t, **kwargs)

    return inputs


# --- mistakes -----------------------------------------------------------------------------------

def _shifted(shift: int) -> Callable[[nn.Module, Inputs], torch.Tensor]:
    def output(ref: nn.Module, i: Inputs) -> torch.Tensor:
        return ref.weight.index_select(0, (i.args[0] + shift).reshape(-1)).reshape(*i.args[0].shape, -1)

    return output


EMBEDDING_MISTAKES = (
    Mistake("the lookup is off by one (row id - 1 instead of row id)", _shifted(-1)),
    Mistake("the lookup is off by one (row id + 1 instead of row id)", _shifted(+1)),
)


def _bag(ref: nn.Module, i: Inputs, **change) -> torch.Tensor:
    """torch's EmbeddingBag output for the reference's state with some arguments changed."""
    args = dict(offsets=i.args[1] if len(i.args) > 1 else None, mode=ref.mode, padding_idx=ref.padding_idx,
                per_sample_weights=i.kwargs.get("per_sample_weights"), include_last_offset=ref.include_last_offset)
    args.update(change)
    return F.embedding_bag(i.args[0], ref.weight, **args)


def _only(ref: nn.Module, i: Inputs, mode: str, need: str | None = None) -> None:
    """Raises (so the mistake does not apply) unless the reference has this mode and, when `need`
    is given, padding ("padding") or per-sample weights ("weights")."""
    if ref.mode != mode or (need == "padding" and ref.padding_idx is None) \
            or (need == "weights" and i.kwargs.get("per_sample_weights") is None):
        raise LookupError("not applicable")


def _mean_as_sum(ref: nn.Module, i: Inputs) -> torch.Tensor:
    _only(ref, i, "mean")
    return _bag(ref, i, mode="sum")


def _weights_ignored(ref: nn.Module, i: Inputs) -> torch.Tensor:
    _only(ref, i, "sum", "weights")
    return _bag(ref, i, per_sample_weights=None)


def _max_over_padding(ref: nn.Module, i: Inputs) -> torch.Tensor:
    _only(ref, i, "max", "padding")
    return _bag(ref, i, padding_idx=None)


def _mean_counting_padding(ref: nn.Module, i: Inputs) -> torch.Tensor:
    _only(ref, i, "mean", "padding")
    ones = torch.ones(1, ref.weight.shape[1], dtype=ref.weight.dtype, device=ref.weight.device)
    lengths = F.embedding_bag(i.args[0], ones.expand(ref.weight.shape[0], -1).contiguous(),
                              i.args[1] if len(i.args) > 1 else None, mode="sum",
                              include_last_offset=ref.include_last_offset)  # (B, D): ids per bag, padding included
    return _bag(ref, i, mode="sum") / lengths.clamp(min=1)


BAG_MISTAKES = (
    Mistake("each bag's mean is computed as a sum: divide the sum by the number of (non-padding) ids in the bag",
            _mean_as_sum),
    Mistake("the mean divides by the bag's length including its padding ids: padding ids are skipped, so they "
            "count neither in the sum nor in the number of ids", _mean_counting_padding),
    Mistake("per_sample_weights are ignored: in mode 'sum' each row is multiplied by its weight before the sum",
            _weights_ignored),
    Mistake("padding ids take part in the max: skip them (a bag of only padding ids gives zeros)",
            _max_over_padding),
)


# --- judges -------------------------------------------------------------------------------------

def _load(stu, ref: nn.Module) -> str | None:
    try:
        stu.load_state_dict(ref.state_dict())
    except Exception as exc:  # noqa: BLE001
        return f"loading torch's state {raised(exc)}"
    return None


def padding_judge(how: str) -> Callable:
    """padding_idx is stored normalised, its row starts at zero and gets no gradient. `how` tells
    the student how their layer should stop that gradient."""

    def judge(ctx) -> Iterable[Result]:
        parts = set(ctx.parts)
        if not parts & {"state", "backward"}:
            return
        for case in ctx.cases:
            if case.kwargs.get("padding_idx") is None:
                continue
            where = case.label(ctx.spec.name)
            ref, stu = ctx.reference(case), ctx.student(case, where, ())
            if stu is None:
                continue
            pad, given = ref.padding_idx, case.kwargs["padding_idx"]
            try:
                found = stu.attrs("padding_idx", "weight")
            except Exception:  # noqa: BLE001 - a fault, reported by the engine
                continue
            if "state" in parts:
                got = found["padding_idx"].value
                ok = got == pad
                yield Result("state", where, ok, "" if ok else (
                    f"self.padding_idx is {got!r}, expected {pad}" + (
                        f": torch stores a negative padding_idx counted from the end, num_embeddings + padding_idx "
                        f"= {ref.num_embeddings} + ({given}) = {pad}" if given < 0 else "")), check="padding_idx")
                weight = found["weight"].value
                if isinstance(weight, torch.Tensor) and weight.shape == ref.weight.shape:
                    row = weight[pad]
                    ok = bool((row == 0).all())
                    yield Result("state", where, ok, "" if ok else (
                        f"the padding row weight[{pad}] should start as zeros (torch zeroes it after drawing the "
                        f"weights); yours starts as {[round(v, 4) for v in row.flatten()[:4].tolist()]}..."),
                        tag="initialisation", check="padding row")
            if "backward" not in parts or _load(stu, ref):
                continue  # a state that does not load is reported by the engine
            inputs = ctx.make(case, torch.float64, "padding")
            try:
                stu.to(dtype=torch.float64)
                got = ctx.forward(stu, inputs, traced=True, leaves=True)
                out = got.output
                if type(out) is not torch.Tensor or not got.requires_grad[0]:
                    continue  # reported by the engine's own backward check
                grad = stu.backward([0], [torch.ones_like(out)]).params.get("weight")
            except Exception:  # noqa: BLE001 - reported by the engine's own forward and backward
                continue
            ok = grad is None or bool((grad[pad] == 0).all())
            yield Result("backward", where, ok, "" if ok else (
                f"weight[{pad}], the padding row, gets a gradient: padding_idx={given} marks a row that is never "
                f"trained; {how}"), "float64", check="padding gradient")

    return judge


def from_pretrained_judge(ctx) -> Iterable[Result]:
    """`Embedding.from_pretrained(embeddings, freeze=True, padding_idx=None)` against torch's."""
    parts = set(ctx.parts)
    if not parts & {"state", "forward", "backward"}:
        return
    if not ctx.side.has_callable("from_pretrained"):
        for part in ("state", "forward", "backward"):
            yield Result(part, "Embedding.from_pretrained", False, f"{ctx.side.name} has no class method "
                         "from_pretrained(embeddings, freeze=True, padding_idx=None, ...)", check="from_pretrained")
        return
    maker = Maker(torch.float64, ctx.device, seed_of(ctx.spec.name, "from_pretrained"))
    embeddings = maker.uniform(6, 3, low=0.5, high=1.5)  # no zero anywhere, the padding row included
    ids_ = maker.tensor([[5, 1, 0, 1], [2, 1, 4, 3]], dtype=torch.long)
    for kwargs in ({}, {"freeze": False, "padding_idx": 1}, {"padding_idx": -1}):
        where = "Embedding.from_pretrained(embeddings" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")"
        ref = nn.Embedding.from_pretrained(embeddings.clone(), **kwargs)
        try:
            stu = ctx.side.build((embeddings.clone(),), kwargs, method="from_pretrained")
            if stu.info["instance_of_cls"]:
                stu.to(device=ctx.device)
        except Exception as exc:  # noqa: BLE001
            for part in ("state", "forward", "backward"):
                yield Result(part, where, False, f"{raised(exc)}", check="from_pretrained")
            return
        if not stu.info["instance_of_cls"]:
            for part in ("state", "forward", "backward"):
                yield Result(part, where, False, f"returned a {stu.info['type']}, expected an "
                             f"instance of your {ctx.side.name} (a classmethod builds it with cls(...))",
                             check="from_pretrained")
            return
        try:
            found = stu.attrs("weight", "padding_idx")
        except Exception as exc:  # noqa: BLE001
            yield Result("state", where, False, f"{raised(exc)}", check="from_pretrained")
            return
        if "state" in parts:
            problems = []
            weight = found["weight"]
            if not weight.parameter:
                problems.append("the layer has no nn.Parameter `weight`")
            else:
                problems += compare.structure(weight.value, ref.weight.detach(), "weight") or compare.values(
                    weight.value, ref.weight.detach(), 0, 0, "weight")
                if problems and "padding_idx" in kwargs:
                    problems[0] += (" (from_pretrained keeps the given matrix as it is, its padding row included: "
                                    "only a freshly drawn weight gets a zero padding row)")
                if weight.requires_grad != ref.weight.requires_grad:
                    problems.append(f"weight.requires_grad is {weight.requires_grad}, expected "
                                    f"{ref.weight.requires_grad}: freeze={kwargs.get('freeze', True)} "
                                    f"{'freezes the weight' if kwargs.get('freeze', True) else 'keeps it trainable'}")
            if found["padding_idx"].value != ref.padding_idx:
                problems.append(f"padding_idx is {found['padding_idx'].value!r}, expected {ref.padding_idx!r}")
            yield Result("state", where, not problems, "; ".join(problems[:2]), check="from_pretrained")
        try:
            forward = stu.forward(call(ids_), leaves=True)
        except Exception as exc:  # noqa: BLE001
            yield Result("forward", where, False, f"forward {raised(exc)}", check="from_pretrained")
            continue
        got = forward.output
        want = ref(ids_)
        problems = compare.structure(got, want) or compare.values(got, want, 1e-12, 1e-12)
        if problems and ref.padding_idx is not None and not compare.structure(got, want) and not compare.values(
                got, want * (ids_ != ref.padding_idx).unsqueeze(-1), 1e-12, 1e-12):
            problems[0] += ("; it matches the output when the padding positions are zeroed: torch returns the "
                            "padding row as it is (zeros only while it is untouched) and only stops its gradient")
        yield Result("forward", where, not problems, "; ".join(problems[:1]), check="from_pretrained")
        if "backward" in parts and want.requires_grad and not problems:
            upstream = Maker(torch.float64, ctx.device, seed_of("from_pretrained", "upstream")).randn(*want.shape)
            want.backward(upstream)
            try:
                if not forward.requires_grad[0]:
                    raise StudentError("gives an output that does not require grad (is the weight frozen?)")
                grad = stu.backward([0], [upstream]).params.get("weight")
                grad_problems = ctx.grad_problems(grad, ref.weight.grad, (1e-10, 1e-12), "gradient of 'weight'")
            except Exception as exc:  # noqa: BLE001
                grad_problems = [f"backward {raised(exc)}"]
            if grad_problems and "padding_idx" in kwargs:
                grad_problems[0] += " (the padding row must get no gradient, even when it is not zero)"
            yield Result("backward", where, not grad_problems, "; ".join(grad_problems[:1]), check="from_pretrained")


def out_of_range_judge(make_inputs: Callable[[torch.Tensor], Inputs]) -> Callable:
    """Ids num_embeddings and -1 raise an IndexError or a RuntimeError, like torch's. `make_inputs`
    wraps a 1-d tensor of ids into the layer's forward arguments."""

    def judge(ctx) -> Iterable[Result]:
        if "forward" not in ctx.parts or not ctx.cases:
            return
        case = ctx.cases[0]
        ref, stu = ctx.reference(case).cpu(), ctx.student(case, case.label(ctx.spec.name), ())
        if stu is None:
            return
        try:
            stu.to(device="cpu")
        except Exception:  # noqa: BLE001 - the engine reports it
            return
        if _load(stu, ref):
            return
        n = ref.num_embeddings
        try:
            stu.forward(make_inputs(torch.tensor([0, n - 1])), no_grad=True)
        except Exception:  # noqa: BLE001 - the engine reports a forward that fails on valid ids
            return
        for bad, hint in ((n, ""), (-1, " (weight[-1] silently reads the last row: index_select checks the range)")):
            where = f"{case.label(ctx.spec.name)} on id {bad}"
            try:
                stu.forward(make_inputs(torch.tensor([0, bad])), no_grad=True)
            except StudentError as exc:
                if isinstance(exc, Fault) or not exc.is_a("IndexError", "RuntimeError"):
                    yield Result("forward", where, False, f"{raised(exc)}; expected an IndexError (or RuntimeError), "
                                 "like torch's", check="out of range")
                    continue
                ok = not exc.is_a("NotImplementedError")
                yield Result("forward", where, ok, "" if ok else f"{raised(exc)}", check="out of range")
                continue
            except Exception as exc:  # noqa: BLE001
                yield Result("forward", where, False, f"{raised(exc)}; expected an IndexError (or RuntimeError), "
                             "like torch's", check="out of range")
                continue
            yield Result("forward", where, False, f"should raise an IndexError like torch's, but returned a result: "
                         f"ids must lie in [0, num_embeddings) = [0, {n}){hint}", check="out of range")

    return judge


# --- Embedding ----------------------------------------------------------------------------------

def _embedding_hidden(rng: random.Random) -> Iterable[Case]:
    n, d = rng.randint(5, 40), rng.randint(1, 8)
    shape = [rng.randint(1, 6) for _ in range(rng.randint(1, 3))]
    dtype = rng.choice([torch.long, torch.int32])
    yield Case("hidden_ids", (n, d), {}, ids(n, *shape, dtype=dtype))
    pad = rng.choice([rng.randrange(n), -rng.randint(1, n)])
    yield Case("hidden_padding", (n, d), {"padding_idx": pad}, ids(n, rng.randint(4, 9), 3, dtype=dtype,
                                                                   pad=pad % n))
    yield Case("hidden_middle_ids", (n, d), {}, ids(n, rng.randint(3, 9), low=1, high=n - 1))


register(Spec(
    name="Embedding",
    chapter="embedding",
    reference=nn.Embedding,
    cases=(
        Case("default", (10, 3), {}, ids(10, 4, 5)),
        Case("int_ids", (10, 3), {}, ids(10, 7, dtype=torch.int32)),
        Case("middle_ids", (12, 4), {}, ids(12, 3, 6, low=1, high=11)),  # a shifted lookup stays in range
        Case("padding_idx", (10, 3), {"padding_idx": 0}, ids(10, 4, 6, pad=0)),
        Case("padding_idx_negative", (10, 3), {"padding_idx": -2}, ids(10, 4, 6, pad=8)),  # row 8
        Case("scalar_id", (5, 2), {}, lambda make: call(make.tensor(3, dtype=torch.long))),  # () -> (2,)
        Case("three_dim_ids", (20, 6), {}, ids(20, 2, 3, 4)),
        Case("padding_int_ids", (15, 5), {"padding_idx": 14}, ids(15, 9, dtype=torch.int32, pad=14)),
    ),
    hidden=_embedding_hidden,
    # N(0, 1) weights, which a uniform or scaled init does not match
    init_cases=(Case("init", (1000, 64)),),
    scales=(Scale("ids (4,) vs (8, 16)", Case("scale", (20, 4)), ids(20, 4), ids(20, 8, 16)),),
    forbidden_calls=FORBIDDEN_CALLS,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=EMBEDDING_MISTAKES,
    judges=(
        padding_judge("keep its value in the output but stop its gradient (e.g. torch.where on the padding "
                      "positions with a .detach()ed copy of the rows)"),
        from_pretrained_judge,
        out_of_range_judge(lambda t: call(t)),
    ),
    bench=Case("bench", (50_000, 256), {}, ids(50_000, 64, 128)),
))


# --- EmbeddingBag -------------------------------------------------------------------------------

def _bag_hidden(rng: random.Random) -> Iterable[Case]:
    n, d = rng.randint(5, 30), rng.randint(1, 6)
    lengths = [rng.randint(0, 5) for _ in range(rng.randint(2, 7))]
    mode = rng.choice(["sum", "mean", "max"])
    dtype = rng.choice([torch.long, torch.int32])
    pad = rng.choice([None, rng.randrange(n), -rng.randint(1, n)])
    kwargs = {"mode": mode} | ({"padding_idx": pad} if pad is not None else {})
    last = rng.random() < 0.5
    if last:
        kwargs["include_last_offset"] = True
    yield Case(f"hidden_{mode}", (n, d), kwargs, bags(n, lengths, dtype=dtype, last=last,
                                                     pad=None if pad is None else pad % n,
                                                     weights=mode == "sum" and rng.random() < 0.5))
    yield Case("hidden_two_dim", (n, d), {"mode": rng.choice(["sum", "mean", "max"])},
               rows(n, rng.randint(1, 6), rng.randint(1, 5), dtype=dtype))
    yield Case("hidden_mean", (n, d), {}, bags(n, [rng.randint(1, 5) for _ in range(rng.randint(2, 6))]))


register(Spec(
    name="EmbeddingBag",
    chapter="embedding",
    reference=nn.EmbeddingBag,
    cases=(
        Case("default", (10, 3), {}, bags(10, [3, 1, 4, 2])),  # mode="mean"
        Case("sum", (10, 3), {"mode": "sum"}, bags(10, [2, 5, 1, 3])),
        Case("max", (10, 3), {"mode": "max"}, bags(10, [3, 2, 4, 1])),
        Case("empty_bags", (10, 3), {}, bags(10, [2, 0, 3, 0])),
        Case("empty_bags_max", (10, 3), {"mode": "max"}, bags(10, [0, 2, 0, 3])),
        Case("two_dim", (10, 3), {}, rows(10, 4, 5)),
        Case("two_dim_max", (10, 3), {"mode": "max"}, rows(10, 3, 4)),
        Case("two_dim_padding", (10, 3), {"padding_idx": 4}, rows(10, 3, 4, pad=4)),
        Case("per_sample_weights", (10, 3), {"mode": "sum"}, bags(10, [3, 2, 4], weights=True)),
        Case("per_sample_weights_two_dim", (10, 3), {"mode": "sum"}, rows(10, 3, 4, weights=True)),
        Case("include_last_offset", (10, 3), {"mode": "sum", "include_last_offset": True},
             bags(10, [2, 3, 1], last=True)),
        # the first bag holds only the padding id: its output is zeros
        Case("padding_idx", (10, 3), {"padding_idx": 0}, bags(10, [1, 3, 2, 4], pad=0)),
        Case("padding_idx_max", (10, 3), {"mode": "max", "padding_idx": -1}, bags(10, [1, 3, 2, 4], pad=9)),
        Case("padding_idx_weights", (10, 3), {"mode": "sum", "padding_idx": 2},
             bags(10, [3, 3, 2], pad=2, weights=True)),
        Case("int_ids", (10, 3), {}, bags(10, [2, 3, 2], dtype=torch.int32)),
        Case("int_ids_long_offsets", (10, 3), {"mode": "max"}, bags(10, [2, 3, 2], dtype=torch.int32,
                                                                  offsets_dtype=torch.long)),
        Case("last_offset_padding", (12, 4), {"include_last_offset": True, "padding_idx": 5},
             bags(12, [3, 0, 4, 2], pad=5, last=True)),
    ),
    hidden=_bag_hidden,
    init_cases=(Case("init", (1000, 64)),),
    scales=(
        Scale("4 bags vs 64 bags", Case("scale", (20, 4)), bags(20, [3, 1, 2, 2]), bags(20, [3, 1, 2, 2] * 16)),
        Scale("4 bags vs 64 bags, mode='max'", Case("scale_max", (20, 4), {"mode": "max"}),
              bags(20, [3, 1, 2, 2]), bags(20, [3, 1, 2, 2] * 16)),
        Scale("2-d input (4, 3) vs (64, 3)", Case("scale", (20, 4)), rows(20, 4, 3), rows(20, 64, 3)),
    ),
    forbidden_calls=FORBIDDEN_CALLS,
    forbidden_modules=FORBIDDEN_MODULES,
    mistakes=BAG_MISTAKES,
    judges=(
        padding_judge("leave padding ids out of their bag entirely (out of the sum, the max and the mean's count)"),
        out_of_range_judge(lambda t: call(t, torch.tensor([0]))),
    ),
    bench=Case("bench", (50_000, 256), {}, bags(50_000, [16] * 512)),
))
