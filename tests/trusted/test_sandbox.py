"""The pieces of the trusted path: the wire, the scan, the reading of test cells, the sandbox as
seen from inside, and the fallback without bubblewrap."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
import torch

from autograder import CHAPTERS, grade, wire
from autograder.notebook import is_test_cell, runnable_cells
from autograder.scan import scan
from autograder.spec import Inputs, Layer, call
from autograder.student import Opaque
from autograder.trusted import Check, Submission, UnsupportedCell, checks_of
from tests.conftest import ROOT, solution_classes

CHAPTERS_WITH_NOTEBOOKS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


def roundtrip(message: dict, share: bool = True) -> dict:
    return wire.unpack(wire.pack(message, share=share)[8:])


# --- the wire ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", list(wire.DTYPES.values()))
def test_every_dtype_crosses_bit_for_bit(dtype):
    t = (torch.randn(3, 4) * 100).to(dtype)
    for share in (True, False):
        got = roundtrip({"t": t}, share)["t"]
        assert type(got) is torch.Tensor and got.dtype == dtype and torch.equal(got, t)


def test_layouts_identity_and_shared_memory_survive_the_judges_requests():
    x = torch.randn(4, 6, dtype=torch.float64)
    got = roundtrip({"i": call(x, x, x.t(), x[1:, ::2])})["i"]
    assert isinstance(got, Inputs) and got.args[0] is got.args[1]  # self-attention's one tensor stays one
    assert got.args[2].stride() == (1, 6) and torch.equal(got.args[3], x[1:, ::2])
    assert got.args[0].untyped_storage().data_ptr() == got.args[2].untyped_storage().data_ptr()


def test_plain_values_and_stand_ins_cross_as_they_are():
    message = {"v": (1, [2.5, None, True], "s", {"k": torch.float32}), "o": Opaque("AlwaysEqual"),
               "l": Layer("LayerNorm", (4,), {"eps": 1e-3}, False), "m": torch.empty(2, 3, device="meta"),
               "e": torch.empty(0, 5)}
    got = roundtrip(message)
    assert got["v"] == (1, [2.5, None, True], "s", {"k": torch.float32})
    assert got["o"] == Opaque("AlwaysEqual") and got["l"] == message["l"]
    assert got["m"].device.type == "meta" and got["m"].shape == (2, 3) and got["e"].shape == (0, 5)


def test_a_compact_reply_sends_a_view_without_its_storage():
    big = torch.zeros(1_000_000)
    assert len(wire.pack({"t": big[:3]}, share=False)) < 1000


def frame(header: dict, blobs: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">I", len(raw)) + raw + blobs


@pytest.mark.parametrize("header, blobs", [
    ({"m": {"t": {"X": 0}}, "x": [{"d": "object", "v": "cpu", "z": [1], "b": 0, "o": 0, "t": [1]}], "b": [8]},
     bytes(8)),  # a dtype that is not on the list
    ({"m": {"t": {"X": 0}}, "x": [{"d": "float64", "v": "cpu", "z": [100], "b": 0, "o": 0, "t": [1]}], "b": [8]},
     bytes(8)),  # more elements than bytes
    ({"m": {"t": {"X": 0}}, "x": [{"d": "float64", "v": "cpu", "z": [2], "b": 0, "o": 0, "t": [-1]}], "b": [16]},
     bytes(16)),  # a negative stride
    ({"m": {"t": {"X": 0}}, "x": [{"d": "float64", "v": "/etc/passwd", "z": [1], "b": 0, "o": 0, "t": [1]}],
      "b": [8]}, bytes(8)),
    ({"m": {"t": {"X": 5}}, "x": [], "b": []}, b""),
    ({"m": {"t": {"P": "os.system"}}, "x": [], "b": []}, b""),  # no such tag: nothing is ever called
    ({"m": {"t": {"X": 0}}, "x": [], "b": [10 ** 9]}, b""),  # a blob longer than the frame
])
def test_a_malformed_message_is_refused(header, blobs):
    with pytest.raises(wire.WireError):
        wire.unpack(frame(header, blobs))


def test_garbage_and_deep_nesting_are_refused():
    with pytest.raises(wire.WireError):
        wire.unpack(b"\xff" * 64)
    for depth in (50, 100_000):  # past the decoder's limit, and past JSON's own
        raw = ('{"m": {"v": ' + "[" * depth + "]" * depth + '}, "x": [], "b": []}').encode()
        with pytest.raises(wire.WireError):
            wire.unpack(struct.pack(">I", len(raw)) + raw)


# --- the scan ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("chapter", CHAPTERS_WITH_NOTEBOOKS)
def test_no_reference_solution_is_flagged(chapter):
    nb = json.loads((ROOT / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    assert scan(runnable_cells(nb)) == []


@pytest.mark.parametrize("source, construct", [
    ("import gc", "import of gc"),
    ("import sys\nsys._getframe(1)", "._getframe"),
    ("import torch\nwith torch._C.DisableTorchFunction():\n    pass", "torch._C.DisableTorchFunction"),
    ("from torch.overrides import TorchFunctionMode", "import of torch.overrides"),
    ("import torch\ntorch.allclose = lambda *a, **k: True", "assignment to torch.allclose"),
    ("from torch import nn\nnn.Module.__call__ = None", "assignment to torch.nn.Module.__call__"),
    ("import autograder.engine", "import of the grader's autograder.engine"),
    ("from autograder.student import Local", "import of the grader's autograder.student"),
    ("exec('1')", "exec"),
    ("open('x')", "open"),
    ("get_ipython()", "get_ipython"),
    ("import torch\ngetattr(torch, '_C')", "getattr(torch, '_C')"),
    ("class T:\n    def __torch_function__(self):\n        pass", "a method named __torch_function__"),
    ("x = (lambda: 0).__globals__", ".__globals__"),
])
def test_a_construct_that_reaches_outside_is_flagged_with_its_line(source, construct):
    flags = scan([(4, source)])
    assert any(f.construct == construct and f.cell == 4 for f in flags), flags
    assert str(flags[0]).startswith("flagged for review: ") and "of cell 4" in str(flags[0])


# --- the test cells, read and never run --------------------------------------------------------------

@pytest.mark.parametrize("chapter", CHAPTERS_WITH_NOTEBOOKS)
def test_every_test_cell_of_the_course_is_in_the_vocabulary(chapter):
    nb = json.loads((ROOT / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and is_test_cell(cell):
            assert checks_of("".join(cell["source"])), cell["metadata"]["nbgrader"]["grade_id"]


def test_a_loop_over_a_literal_list_is_read():
    source = 'for name, layer in [("ReLU", ReLU), ("Flatten", Flat)]:\n    check(name, layer, parts=["forward"])'
    assert checks_of(source) == [Check("check", "ReLU", "ReLU", ("forward",)), Check("check", "Flat", "Flatten",
                                                                                      ("forward",))]


@pytest.mark.parametrize("source", ["import os", "check('Linear', Linear, parts=['nope'])", "x = 1",
                                    "check('Linear', Linear, tolerance=1)", "print(1)", "check('NoSuch', X)"])
def test_anything_else_in_a_test_cell_is_refused(source):
    with pytest.raises(UnsupportedCell):
        checks_of(source)


def test_one_grading_seen_through_one_part_is_that_part_graded_alone():
    """Each (layer, suite) is graded once for all parts; a cell's subset must be what grading its
    parts alone gives."""
    cls = solution_classes("linear")["Linear"]
    full = grade("Linear", cls, suite="hidden", seed=3)
    for part in ("state", "forward", "rules"):
        alone = grade("Linear", cls, parts=[part], suite="hidden", seed=3)
        sub = full.subset((part,))
        assert [(r.part, r.where, r.ok, r.detail) for r in sub.results] == \
               [(r.part, r.where, r.ok, r.detail) for r in alone.results]


# --- the sandbox, seen from inside ----------------------------------------------------------------------

INSIDE = f'''
import os, socket
facts = {{"uid": os.getuid(), "pid": os.getpid(), "ppid": os.getppid(),
         "course": os.path.exists({str(ROOT / "solutions")!r}), "root": sorted(os.listdir("/")),
         "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()), "cwd": os.getcwd()}}
try:
    open("/usr/owned", "w")
    facts["usr"] = "writable"
except OSError as exc:
    facts["usr"] = type(exc).__name__
try:
    socket.create_connection(("127.0.0.1", 22), timeout=1)
    facts["net"] = "connected"
except OSError as exc:
    facts["net"] = type(exc).__name__
print(facts)
'''


@pytest.mark.sandbox
def test_the_student_process_sees_nothing_and_reaches_nothing():
    from autograder.sandbox import isolation

    mode, why = isolation()
    if mode != "bwrap":
        if os.environ.get("AUTOGRADER_REQUIRE_SANDBOX"):
            pytest.fail(f"the sandbox is required here: {why}")
        pytest.skip(why)
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": INSIDE, "outputs": []}]}
    with Submission(nb) as sub:
        out = sub.session.cell_results[0]
    assert out["error"] is None, out
    facts = eval(out["stdout"])  # noqa: S307 - our own cell's printed dict
    assert facts["pid"] == 1 and facts["ppid"] == 0 and facts["pids"] == ["1"]  # alone in its PID namespace
    assert facts["uid"] != 0 and not facts["course"] and facts["usr"] in ("OSError", "PermissionError")
    assert facts["net"] != "connected" and facts["cwd"] == "/tmp"


def test_without_bubblewrap_grading_still_works_and_says_it_is_not_isolated(tmp_path):
    env = {**os.environ, "AUTOGRADER_SANDBOX": "plain"}
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", "solutions/linear/linear.ipynb", "--seed", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not isolated: AUTOGRADER_SANDBOX=plain" in done.stderr
    assert "Linear: passed, 5/5 parts (public suite, cpu, not isolated: AUTOGRADER_SANDBOX=plain)" in done.stdout
    assert CHAPTERS["linear"] == ["Linear"]


def test_a_layer_that_hangs_costs_one_timeout_and_not_its_neighbours_grades():
    """Flatten's forward never returns: it times out once, Flatten is not called again (said so in
    both suites), and Unflatten, in the same notebook, is graded in full."""
    from autograder.sandbox import Limits

    nb = json.loads((ROOT / "solutions" / "flatten" / "flatten.ipynb").read_text())
    endless = "class Flatten(Flatten):\n    def forward(self, input):\n        while True:\n            pass\n"
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "source": endless})
    with Submission(nb, seed=3, limits=Limits.from_env(call=3, cell=10)) as sub:
        public, hidden = sub.report("Flatten"), sub.report("Flatten", suite="hidden")
        others = [sub.report("Unflatten"), sub.report("Unflatten", suite="hidden")]
        faults = sub.faults()
    assert not public.part_passed("forward") and "stopped after 3 s in" in str(public), str(public)
    assert not hidden.passed and "so Flatten was not called again" in str(hidden), str(hidden)
    assert all(r.passed for r in others), "\n".join(map(str, others))
    assert [kind for kind, _ in faults].count("timeout") == 1, faults
