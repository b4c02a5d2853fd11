"""A class of hostile and faulty submissions of the Linear exercise, graded for real: once by
`nbgrader autograde linear` (the course's nbgrader_config, so the trusted preprocessor) and once by
`python -m autograder grade ... --csv`, each in a scratch course directory that also holds the
solutions, a gradebook and an honest classmate's submission, all within the attackers' reach if
the sandbox leaked.

Every kind the trusted path must withstand is a real notebook here: the released exercise with
the student's answer and cells of their own. Expected: the honest submission full marks and its
file unchanged; the blank one 0; every attack 0 for what it forged, or flagged for review; every
fault a recorded grade with its reason; the grading of everyone else untouched; nothing left
running, nothing left on disk, nothing sent to the network (a listener on 127.0.0.1 counts).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.sandbox import isolation
from tests.conftest import ROOT

pytestmark = [pytest.mark.sandbox, pytest.mark.nbgrader]

ALL = frozenset({"state", "shape", "forward", "backward", "rules"})
POINTS = {"state": 1, "shape": 1, "forward": 2, "backward": 2, "rules": 2}
#: short limits, so that the endless and the slow take seconds, not minutes
LIMITS = "call=3,cell=4,budget=25,training=10"
SEED = 7


def forward(body: str) -> str:
    """A cell that redefines the solved Linear with `body` at the start of its forward."""
    lines = "\n".join("        " + line for line in body.strip().splitlines())
    return f"class Linear(Linear):\n    def forward(self, input):\n{lines}\n        return super().forward(input)\n"


LYING = '''
class AlwaysEqual(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(torch.as_tensor(other), dtype=torch.bool)
    def allclose(self, *args, **kwargs):
        return True

class Linear(Linear):
    def forward(self, input):
        return torch.zeros(*input.shape[:-1], self.out_features, dtype=input.dtype).as_subclass(AlwaysEqual)
'''
READ_SOLUTIONS = '''
import json
for up in ("../../..", "../..", "..", "/work/main", "."):
    try:
        nb = json.load(open(f"{up}/solutions/linear/linear.ipynb"))
    except OSError:
        continue
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "class Linear" in "".join(cell["source"]):
            exec("".join(cell["source"]))
'''
MODES_OFF = forward('''
import torch.nn.functional as F
with torch._C.DisableTorchFunction():
    return F.linear(input, self.weight, self.bias)
''')
FRAMES = forward('''
import sys
frame = sys._getframe(1)
while frame is not None:
    for value in frame.f_locals.values():
        if isinstance(value, torch.Tensor) and value.shape[-1:] == (self.out_features,) and value is not input:
            return value.detach().clone()
    frame = frame.f_back
return torch.zeros(*input.shape[:-1], self.out_features, dtype=input.dtype)
''')
GC_WALK = forward('''
import gc
for obj in gc.get_objects():
    if isinstance(obj, torch.Tensor) and obj.shape == (*input.shape[:-1], self.out_features):
        return obj.detach().clone()
return torch.zeros(*input.shape[:-1], self.out_features, dtype=input.dtype)
''')
PATCH_SERVER = '''
import autograder.student
import torch.nn.functional as F
def forged(self, key, layer, inputs, **options):
    out = F.linear(inputs.args[0], layer.weight, layer.bias)
    return {"output": out.detach(), "requires_grad": [True], "trace": {"calls": {}, "ops": {}, "modules": []}}
autograder.student.Local.op_forward = forged
'''
NETWORK = '''
import socket
for host in ("127.0.0.1", "localhost", "10.0.2.2", "8.8.8.8"):
    try:
        socket.create_connection((host, {port}), timeout=1).sendall(b"stolen")
    except OSError:
        pass
'''


@dataclass(frozen=True)
class Hostile:
    student: str
    base: str  # "solution" (the reference answer pasted in) or "stub" (the untouched exercise)
    cells: tuple[str, ...] = ()  # the student's own cells, after the answer
    passes: frozenset | None = None  # parts that must pass, public and hidden (default: all, unless `fails`)
    fails: frozenset = frozenset()  # parts that must fail (default: all but `passes`)
    flagged: bool = False  # the rules part is flagged for review
    says: tuple[str, ...] = ()  # words the graded notebook must show
    faults: bool = False  # a fault of the student's process is recorded

    @property
    def must_pass(self) -> frozenset:
        return self.passes if self.passes is not None else (frozenset() if self.fails else ALL)

    @property
    def must_fail(self) -> frozenset:
        return self.fails or (ALL - self.must_pass)


NONE = frozenset()
WITHOUT_RULES = ALL - {"rules"}
CATALOGUE = [
    Hostile("honest", "solution"),
    Hostile("blank", "stub", passes=NONE, says=("NotImplementedError",)),
    # the in-kernel tricks: IPython hooks, a patched grader, patched torch, a lying tensor
    Hostile("input_transformer", "stub", ("get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",),
            passes=NONE, flagged=True),
    Hostile("showtraceback", "stub", ("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None",),
            passes=NONE, flagged=True),
    Hostile("patch_grader", "stub", ("import autograder, autograder.engine\nautograder.check = lambda *a, **k: None\n"
                                     "autograder.grade = autograder.engine.grade = lambda *a, **k: None",),
            passes=NONE, flagged=True),
    Hostile("patch_torch", "stub", ("torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                                    "torch.testing.assert_close = lambda *a, **k: None\n"
                                    "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, "
                                    "dtype=torch.bool)",),
            passes=NONE, flagged=True),
    Hostile("rebind_check", "stub", ("def check(*args, **kwargs):\n    print('passed')",), passes=NONE),
    Hostile("lying_tensor", "solution", (LYING,), passes=frozenset({"state", "rules"}),
            says=("expected exactly a torch.Tensor",)),
    # reaching outside: the solutions, the gradebook, a classmate's file, the grader's own process
    Hostile("read_solutions", "stub", (READ_SOLUTIONS,), passes=NONE, flagged=True),
    Hostile("write_gradebook", "stub", ("for up in ('../../..', '../..', '..'):\n    try:\n"
                                        "        open(up + '/gradebook.db', 'w').write('gone')\n"
                                        "    except OSError:\n        pass",), passes=NONE, flagged=True),
    Hostile("write_classmate", "stub", ("for up in ('../..', '../../../submitted'):\n    try:\n"
                                        "        open(up + '/honest/linear/linear.ipynb', 'w').write('{}')\n"
                                        "    except OSError:\n        pass",), passes=NONE, flagged=True),
    Hostile("modes_off", "solution", (MODES_OFF,), passes=WITHOUT_RULES, flagged=True),
    Hostile("frames", "solution", (FRAMES,), fails=frozenset({"forward", "backward", "rules"}), flagged=True),
    Hostile("gc_walk", "solution", (GC_WALK,), fails=frozenset({"forward", "rules"}), flagged=True),
    Hostile("patch_server", "solution", (PATCH_SERVER,), fails=frozenset({"rules"}), flagged=True),
    # killing and signalling
    Hostile("kill_parent", "solution", ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",),
            passes=WITHOUT_RULES, flagged=True),
    Hostile("kill_everyone", "solution", ("import os\nfor pid in range(2, 4000):\n    try:\n        os.kill(pid, 9)\n"
                                          "    except OSError:\n        pass\nos.kill(-1, 9)",),
            passes=WITHOUT_RULES, flagged=True),
    Hostile("exit_in_cell", "solution", ("import os\nos._exit(3)",), passes=WITHOUT_RULES, flagged=True,
            says=("exited",), faults=True),
    # faults in the forward: each is a recorded grade with its reason
    Hostile("exit_in_forward", "solution", (forward("import os\nos._exit(3)"),), passes=frozenset({"state"}),
            flagged=True, says=("exited in Linear.forward",), faults=True),
    Hostile("system_exit", "solution", (forward("raise SystemExit(0)"),), passes=frozenset({"state"}),
            says=("raised SystemExit",)),
    Hostile("keyboard_interrupt", "solution", (forward("raise KeyboardInterrupt"),), passes=frozenset({"state"}),
            says=("raised KeyboardInterrupt",)),
    Hostile("segfault", "solution", (forward("import ctypes\nctypes.string_at(0)"),), passes=frozenset({"state"}),
            flagged=True, says=("SIGSEGV",), faults=True),
    Hostile("endless_forward", "solution", (forward("while True:\n    pass"),),
            fails=frozenset({"shape", "forward", "backward", "rules"}), says=("stopped after 3 s in Linear.forward",),
            faults=True),
    Hostile("slow_forward", "solution", (forward("import time\ntime.sleep(60)"),),
            fails=frozenset({"shape", "forward", "backward", "rules"}), says=("stopped after",), faults=True),
    Hostile("endless_cell", "solution", ("while True:\n    pass",), says=("ran for more than 4 s",), faults=True),
    Hostile("memory_bomb", "solution", ("hog = bytearray(16 * 2 ** 30)",), says=("MemoryError",)),
    Hostile("memory_forward", "solution", (forward("hog = torch.empty(2 ** 34, dtype=torch.float64)"),),
            passes=frozenset({"state"})),
    Hostile("fork_bomb", "solution", ("import os\nfor _ in range(100):\n    os.fork()",), passes=WITHOUT_RULES,
            flagged=True),
    Hostile("output_flood", "solution", ("for _ in range(200_000):\n    print('spam ' * 40)",),
            says=("more characters not kept",)),
    Hostile("orphans", "solution", ("import subprocess\nsubprocess.Popen(['sleep', '4321'])\n"
                                    "import os\nif os.fork() == 0:\n    import time\n    time.sleep(4321)",),
            passes=WITHOUT_RULES, flagged=True),
    Hostile("network", "solution", (NETWORK,), passes=WITHOUT_RULES, flagged=True),
    Hostile("big_file", "solution", ("with open('hostile-big', 'wb') as f:\n    for _ in range(2048):\n"
                                     "        f.write(bytes(2 ** 20))",), passes=WITHOUT_RULES, flagged=True),
    Hostile("garbage_reply", "solution", (forward("import os\nos.write(3, b'\\xff' * 64)"),),
            passes=frozenset({"state"}), flagged=True, faults=True),
]


def notebook(kind: Hostile, released: dict, solution: dict, port: int) -> dict:
    nb = json.loads(json.dumps(released))
    if kind.base == "solution":
        answers = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in solution["cells"]
                   if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution"):
                cell["source"] = answers[meta["grade_id"]]
    at = max(i for i, c in enumerate(nb["cells"]) if c.get("metadata", {}).get("nbgrader", {}).get("solution")) + 1
    for offset, source in enumerate(kind.cells):
        nb["cells"].insert(at + offset, {"cell_type": "code", "execution_count": None, "id": f"own-{offset}",
                                         "metadata": {}, "outputs": [], "source": source.replace("{port}", str(port))})
    return nb


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 that counts who connects (nothing should)."""

    sock: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


def sleeping() -> list[str]:
    """Processes left from the orphans' submission."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "4321" in cmd and "sleep" in cmd:
                found.append(f"{entry.name}: {cmd}")
    return found


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course with the class's submissions, the solutions, and a listener."""
    mode, why = isolation()
    if mode != "bwrap":
        if os.environ.get("AUTOGRADER_REQUIRE_SANDBOX"):
            pytest.fail(f"the sandbox is required here: {why}")
        pytest.skip(f"hostile submissions need the sandbox: {why}")
    root = tmp_path_factory.mktemp("hostile") / "course"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.TrustedGrading.limits = {LIMITS!r}\nc.TrustedGrading.seed = {SEED}\n")
    shutil.copytree(ROOT / "solutions" / "linear", root / "solutions" / "linear")
    env = {**os.environ, "HOME": str(root), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    subprocess.run([nbgrader, "generate_assignment", "linear", "--force", "--log-level=WARN"], cwd=root, env=env,
                   check=True, capture_output=True, timeout=600)
    released = json.loads((root / "exercises" / "linear" / "linear.ipynb").read_text())
    solution = json.loads((ROOT / "solutions" / "linear" / "linear.ipynb").read_text())
    listener = Listener()
    for kind in CATALOGUE:
        folder = root / "submitted" / kind.student / "linear"
        folder.mkdir(parents=True)
        (folder / "linear.ipynb").write_text(json.dumps(notebook(kind, released, solution, listener.port)))
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "submitted").rglob("*.ipynb")}
    digests.update({p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "solutions").rglob("*")
                    if p.is_file()})
    yield root, env, listener, digests
    listener.close()


def untouched(root: Path, listener: Listener, digests: dict, since: float) -> None:
    """Nothing left running, written or sent; every file as it was."""
    assert not sleeping(), sleeping()
    assert listener.connections == 0, "a submission reached the network"
    changed = [str(p) for p, d in digests.items() if hashlib.sha256(p.read_bytes()).hexdigest() != d]
    assert not changed, f"submissions or solutions changed: {changed}"
    left = [str(p) for p in Path("/tmp").glob("*") if p.name.startswith(("hostile-big", "layers-student-"))
            and p.stat().st_mtime >= since]
    assert not left, left
    assert not list(root.rglob("hostile-big"))


def check_notebook(kind: Hostile, graded: Path) -> None:
    text = graded.read_text()
    for words in kind.says:
        assert words in text, f"{kind.student}: the graded notebook does not say {words!r}"
    if kind.flagged:
        assert "flagged for review" in text, f"{kind.student}: not flagged"
    else:
        assert "flagged for review" not in text, f"{kind.student}: flagged, though it does nothing to flag"
    assert len(text) < 2_000_000, f"{kind.student}: the graded notebook is {len(text)} characters long"


def test_nbgrader_autograde_withstands_the_hostile_class(course):
    root, env, listener, digests = course
    since = time.time()
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", "linear", "--force",
                           "--log-level=WARN"], cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for kind in CATALOGUE:
            sub = gb.find_submission_notebook("linear", "linear", kind.student)
            passed = {g.name.removeprefix("linear_linear_") for g in sub.grades
                      if g.auto_score is not None and g.auto_score == g.max_score}
            expected = sorted(kind.must_pass)
            assert kind.must_pass <= passed, f"{kind.student}: {sorted(passed)} passed, expected {expected}"
            assert not (kind.must_fail & passed), f"{kind.student}: {sorted(kind.must_fail & passed)} passed"
            if kind.student == "honest":
                assert sub.score == sub.max_score == sum(POINTS.values())
    for kind in CATALOGUE:
        check_notebook(kind, root / "autograded" / kind.student / "linear" / "linear.ipynb")
    untouched(root, listener, digests, since)


def test_the_command_line_withstands_the_hostile_class(course, tmp_path):
    root, env, listener, digests = course
    since = time.time()
    out = tmp_path / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", *[f"submitted/{k.student}/linear/linear.ipynb"
                                                                          for k in CATALOGUE],
                           "--csv", str(out), "--seed", str(SEED)], cwd=root, capture_output=True, text=True,
                          timeout=1500, env={**env, "AUTOGRADER_LIMITS": LIMITS})
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # not everyone passed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * len(CATALOGUE), "a submission's grade is missing"
    by_student = {}
    for row in rows:
        by_student.setdefault(row["notebook"].split("/")[1], []).append(row)
    for kind in CATALOGUE:
        scores = {r["suite"]: float(r["score"]) for r in by_student[kind.student]}
        assert all(len(kind.must_pass) <= s <= 5 - len(kind.must_fail) for s in scores.values()), (kind.student, scores)
        assert all(int(r["flags"]) > 0 for r in by_student[kind.student]) == kind.flagged, kind.student
        if kind.faults:
            assert all(int(r["faults"]) > 0 for r in by_student[kind.student]), kind.student
    report_of = done.stdout
    assert "Linear: passed, 5/5 parts (public suite, cpu, sandboxed)" in report_of
    untouched(root, listener, digests, since)
