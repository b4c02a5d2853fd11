"""Benchmark of grading a class: stock nbgrader against the course's trusted path, side by side.

    make bench                     # this and bench/run.py; writes bench/grading.md
    python bench/grading.py --size 40 --chapter linear conv

For each chapter a synthetic class of `--size` submissions (honest, blank, each common mistake,
a few faults: an endless forward, an exit in the forward, an endless cell) is graded, each time in
a fresh copy of one scratch course, by:

1. stock `nbgrader autograde` (its own Execute: a kernel per notebook, test cells run in it);
2. the course's trusted `nbgrader autograde` (nbgrader_config.py: TrustedGrading);
3. `python -m autograder autograde` with 1 and with 2 workers;
4. the same on a 2-worker `distributed.LocalCluster` (started here, not timed).

Reported: wall time, submissions per minute, the ratio to stock nbgrader, peak memory (the RSS of
every process involved, sampled), and the one-time start-up apart (the sandbox's template; the
grading of one notebook). Limits are short for both (10 s per cell or call) so that a fault costs
seconds, not minutes, in either.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

import psutil  # noqa: E402

from bench.run import cpu_name  # noqa: E402

LIMITS = "call=10,cell=10,budget=60"

#: cells appended after the solution, each making one kind of submission (the layer class named)
WRONG = {
    "linear": {
        "bias_ignored": "class Linear(Linear):\n    def forward(self, input):\n        return input @ self.weight.T\n",
        "transposed": "class Linear(Linear):\n    def forward(self, input):\n        return input @ self.weight + "
                      "self.bias\n",
        "calls_torch": "import torch.nn.functional as F\nclass Linear(Linear):\n    def forward(self, input):\n"
                       "        return F.linear(input, self.weight, self.bias)\n",
        "row_loop": "class Linear(Linear):\n    def forward(self, input):\n        rows = input.reshape(-1, "
                    "self.in_features)\n        out = torch.stack([r @ self.weight.T for r in rows])\n"
                    "        return (out + self.bias if self.bias is not None else out).reshape(*input.shape[:-1], "
                    "self.out_features)\n",
        "detached": "class Linear(Linear):\n    def forward(self, input):\n        return super().forward(input)"
                    ".detach()\n",
        "normal_init": "class Linear(Linear):\n    def reset_parameters(self):\n        with torch.no_grad():\n"
                       "            self.weight.normal_()\n            if self.bias is not None:\n"
                       "                self.bias.zero_()\n",
        "scaled": "class Linear(Linear):\n    def forward(self, input):\n        return 1.5 * super().forward(input)\n",
    },
    "conv": {
        "ignores_stride": "class Conv2d(Conv2d):\n    def __init__(self, *args, **kwargs):\n"
                          "        kwargs.pop('stride', None)\n        super().__init__(*args[:3], **kwargs)\n",
        "ignores_dilation": "class Conv2d(Conv2d):\n    def __init__(self, *args, **kwargs):\n"
                            "        kwargs.pop('dilation', None)\n        super().__init__(*args, **kwargs)\n",
        "calls_torch": "import torch.nn.functional as F\nclass Conv2d(Conv2d):\n    def forward(self, input):\n"
                       "        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, "
                       "self.dilation, self.groups)\n",
        "batch_loop": "class Conv2d(Conv2d):\n    def forward(self, input):\n        if input.dim() == 3:\n"
                      "            return super().forward(input)\n        return torch.cat([super(Conv2d, self)"
                      ".forward(input[i:i + 1]) for i in range(len(input))])\n",
        "detached": "class Conv2d(Conv2d):\n    def forward(self, input):\n        return super().forward(input)"
                    ".detach()\n",
        "scaled": "class Conv2d(Conv2d):\n    def forward(self, input):\n        return 1.5 * super().forward(input)\n",
        "no_bias": "class Conv2d(Conv2d):\n    def __init__(self, *args, **kwargs):\n        kwargs['bias'] = False\n"
                   "        super().__init__(*args, **kwargs)\n",
    },
}
FAULTS = {
    "endless_forward": "class {cls}({cls}):\n    def forward(self, input):\n        while True:\n            pass\n",
    "exit_in_forward": "import os\nclass {cls}({cls}):\n    def forward(self, input):\n        os._exit(1)\n",
    "endless_cell": "while True:\n    pass\n",
}
FIRST_LAYER = {"linear": "Linear", "conv": "Conv2d"}


def kinds(chapter: str, size: int) -> list[str]:
    """The class: every mistake and fault once, one blank per eight, the rest honest."""
    wrong = list(WRONG[chapter]) + list(FAULTS)
    blank = max(1, size // 8)
    return (wrong + ["blank"] * blank + ["honest"] * max(0, size - len(wrong) - blank))[:size]


def notebook(chapter: str, kind: str) -> dict:
    solution = json.loads((ROOT / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    released = json.loads((ROOT / "exercises" / chapter / f"{chapter}.ipynb").read_text())
    if kind == "blank":
        return released
    answers = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in solution["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    cells = [c for c in released["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    for cell in cells:
        cell["source"] = answers[cell["metadata"]["nbgrader"]["grade_id"]]
    extra = WRONG[chapter].get(kind) or FAULTS.get(kind, "").format(cls=FIRST_LAYER[chapter])
    if extra:
        at = released["cells"].index(cells[-1]) + 1
        released["cells"].insert(at, {"cell_type": "code", "execution_count": None, "id": f"own-{kind}",
                                      "metadata": {}, "outputs": [], "source": extra})
    return released


def make_course(where: Path, chapter: str, size: int) -> Path:
    course = where / "course"
    course.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / chapter, course / "solutions" / chapter)
    env = environment(course)
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", chapter, "--force", "--log-level=WARN"], cwd=course,
                   env=env, check=True, capture_output=True)
    for i, kind in enumerate(kinds(chapter, size)):
        folder = course / "submitted" / f"s{i:03d}-{kind}" / chapter
        folder.mkdir(parents=True)
        (folder / f"{chapter}.ipynb").write_text(json.dumps(notebook(chapter, kind)))
    return course


def environment(course: Path) -> dict:
    return {**os.environ, "HOME": str(course), "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
            "AUTOGRADER_LIMITS": LIMITS}


STOCK = """
# stock nbgrader: its own Execute, every cell (test cells included) in one kernel per notebook
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern, LimitOutput,
                                    SaveAutoGrades)
c.Autograde.autograde_preprocessors = [Execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.Execute.timeout = 10
"""
SEED = 5  # one hidden-suite seed for every path, so that their scores can be compared
TRUSTED = f"\nc.TrustedGrading.limits = {LIMITS!r}\nc.TrustedGrading.seed = {SEED}\n"


class Peak:
    """The largest total RSS of a process tree (and of extra processes), sampled every 0.1 s."""

    def __init__(self, extra: list[int] = ()):
        self.extra, self.peak, self.stop, self.root = list(extra), 0, False, None

    def watch(self, pid: int) -> None:
        self.root = pid
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop:
            total = 0
            for pid in [self.root, *self.extra]:
                try:
                    p = psutil.Process(pid)
                    for q in [p, *p.children(recursive=True)]:
                        total += q.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            time.sleep(0.1)

    def done(self) -> int:
        self.stop = True
        self.thread.join()
        return self.peak


def timed(command: list[str], course: Path, extra_pids: list[int] = ()) -> tuple[float, int, str]:
    peak = Peak(extra_pids)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=course, env=environment(course), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak.watch(proc.pid)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1) or "not graded:" in out:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-3000:]}")
    return seconds, peak.done(), out


def gradebook_scores(course: Path, chapter: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(chapter)}


def bench_chapter(chapter: str, size: int, work: Path) -> list[dict]:
    template = make_course(work / f"{chapter}-template", chapter, size)
    rows = []

    def fresh(label: str, config_extra: str) -> Path:
        course = work / f"{chapter}-{label}"
        shutil.copytree(template, course)
        with open(course / "nbgrader_config.py", "a") as f:
            f.write(config_extra)
        return course

    nbgrader = [str(BIN / "nbgrader"), "autograde", chapter, "--log-level=WARN"]
    ours = [sys.executable, "-m", "autograder", "autograde", chapter, "--quiet", "--seed", str(SEED)]
    runs = [("stock nbgrader autograde", STOCK, nbgrader, None),
            ("trusted nbgrader autograde", TRUSTED, nbgrader, None),
            ("autograde --workers 1", TRUSTED, ours + ["--workers", "1"], None),
            ("autograde --workers 2", TRUSTED, ours + ["--workers", "2"], None),
            ("autograde on a 2-worker LocalCluster", TRUSTED, ours, "dask")]
    scores = {}
    for label, extra, command, kind in runs:
        course = fresh(label.split()[0] + "-" + str(len(rows)), extra)
        if kind == "dask":
            from distributed import LocalCluster

            os.environ["AUTOGRADER_LIMITS"] = LIMITS
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                pids = [w.process.pid for w in cluster.workers.values() if getattr(w, "process", None)] + \
                       [os.getpid()]
                seconds, peak, out = timed(command + ["--scheduler", cluster.scheduler_address], course, pids)
        else:
            seconds, peak, out = timed(command, course)
        scores[label] = gradebook_scores(course, chapter)
        recording = re.search(r"nbgrader's recording ([0-9.]+) s each", out)
        rows.append({"chapter": chapter, "how": label, "seconds": seconds, "per_minute": size / seconds * 60,
                     "peak_mb": peak / 2 ** 20, "recording": float(recording.group(1)) if recording else None})
        print(f"{chapter:<8} {label:<40} {seconds:7.1f} s  {size / seconds * 60:6.1f}/min  "
              f"{peak / 2 ** 20:7.0f} MB", flush=True)
    stock = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = stock / row["seconds"]
    trusted_scores = [v for k, v in scores.items() if k != "stock nbgrader autograde"]
    rows[0]["same_scores"] = all(s == trusted_scores[0] for s in trusted_scores)

    # start-up apart: the trusted nbgrader path on a class of one, against its marginal cost
    one = fresh("one", TRUSTED)
    for folder in sorted((one / "submitted").iterdir())[1:]:
        shutil.rmtree(folder)
    keep = next((one / "submitted").iterdir())
    honest = next(f for f in (template / "submitted").iterdir() if f.name.endswith("honest"))
    shutil.rmtree(keep)
    shutil.copytree(honest, one / "submitted" / honest.name)
    single, _, _ = timed(nbgrader, one)
    rows[0]["single_trusted"] = single
    return rows


def chapter_costs(repeats: int = 3) -> dict[str, float]:
    """Seconds to grade each chapter's solution notebook on the trusted path, once the grading
    process is warm (median of `repeats`, after one untimed): the cost of one honest submission."""
    import statistics

    from autograder.specs import CHAPTER_ORDER
    from autograder.trusted import Submission

    costs = {}
    for chapter in CHAPTER_ORDER:
        nb = json.loads((ROOT / "solutions" / chapter / f"{chapter}.ipynb").read_text())
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            with Submission(nb, seed=i) as sub:
                sub.grade_cells()
            times.append(time.perf_counter() - start)
        costs[chapter] = statistics.median(times[1:])
        print(f"{chapter:<16} {costs[chapter]:6.2f} s per honest notebook", flush=True)
    return costs


def zygote_startup() -> float:
    from autograder.sandbox import Zygote

    z = Zygote()
    z.start()
    seconds = z.startup
    z.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=40, help="submissions per chapter")
    parser.add_argument("--chapter", nargs="+", default=["linear", "conv"])
    parser.add_argument("--out", default=str(ROOT / "bench" / "grading.md"))
    args = parser.parse_args()
    startup = zygote_startup()
    rows = []
    with tempfile.TemporaryDirectory(prefix="layers-bench-") as tmp:
        for chapter in args.chapter:
            rows += bench_chapter(chapter, args.size, Path(tmp))
    costs = chapter_costs()
    write(rows, args, startup, costs)
    return 0


def write(rows: list[dict], args: argparse.Namespace, startup: float, costs: dict[str, float]) -> None:
    from autograder.sandbox import isolation

    lines = ["# Benchmark: grading a class", "",
             f"Measured {datetime.date.today().isoformat()} with `make bench` "
             f"(`bench/grading.py --size {args.size}`).",
             "", f"- machine: {cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}",
             f"- sandbox: {isolation()[0]}; limits {LIMITS} (stock nbgrader: `Execute.timeout = 10`)",
             f"- the sandbox's template (bubblewrap + Python + torch, once per grading process): {startup:.1f} s", "",
             "Each chapter's class: every common mistake and three faults (an endless forward, an exit in the "
             "forward, an endless cell) once, one blank notebook in eight, the rest honest. Every run grades the "
             "whole class from scratch, in its own copy of one course; times are wall-clock, start-up included. "
             "`ratio` is stock nbgrader's time over the row's.", "",
             "| chapter | how | seconds | submissions per minute | ratio | peak memory (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['chapter']} | {r['how']} | {r['seconds']:.1f} | {r['per_minute']:.1f} | "
                     f"{r['ratio']:.1f}x | {r['peak_mb']:.0f} |")
    lines += ["", "Per notebook (the class's time over its size), and the trusted path on a class of one (its "
              "start-up: nbgrader's own, the sandbox's template, the first grading):", "",
              "| chapter | stock nbgrader (s/notebook) | trusted nbgrader (s/notebook) | trusted / stock | "
              "trusted, a class of one (s) | the four trusted paths gave the same scores |",
              "|---|---:|---:|---:|---:|---|"]
    for chapter in dict.fromkeys(r["chapter"] for r in rows):
        mine = [r for r in rows if r["chapter"] == chapter]
        stock, trusted = mine[0]["seconds"] / args.size, mine[1]["seconds"] / args.size
        lines.append(f"| {chapter} | {stock:.2f} | {trusted:.2f} | {trusted / stock:.2f} | "
                     f"{mine[0]['single_trusted']:.1f} | {'yes' if mine[0]['same_scores'] else 'NO'} |")
    scaling = []
    for chapter in dict.fromkeys(r["chapter"] for r in rows):
        seconds = {r["how"]: r["seconds"] for r in rows if r["chapter"] == chapter}
        scaling.append(f"{chapter} {seconds['autograde --workers 1'] / seconds['autograde --workers 2']:.2f}x")
    lines += ["", f"Scaling from 1 to 2 workers (time with 1 over time with 2): {', '.join(scaling)}."]
    term = sum(costs.values())
    lines += ["", "One honest submission of each chapter on the trusted path, in a warm grading process (median "
              "of 3; the judge and the student's process together, one core):", "",
              "| " + " | ".join(costs) + " | all 13 |", "|" + "---:|" * (len(costs) + 1),
              "| " + " | ".join(f"{v:.2f}" for v in costs.values()) + f" | {term:.1f} s |"]
    recording = [r["recording"] for r in rows if r.get("recording")]
    record = sum(recording) / len(recording) if recording else 0.0
    lines += ["", f"Recording a graded notebook (nbgrader's converter and gradebook, and the journal) takes "
              f"{record:.2f} s in the coordinating process, one notebook at a time: that bounds a batch, however "
              "many workers grade it, at one notebook per that time."]
    for students in (300, 5000):
        notebooks = students * len(costs)
        core_hours = students * term / 3600
        floor = notebooks * record / 3600
        two, sixteen, many = (max(core_hours / w, floor) for w in (2, 16, 64))
        lines.append(f"\n{students} students handing in all 13 ({notebooks} notebooks): {core_hours:.1f} core-hours "
                     f"of grading (honest work; faults cost up to their limits) and {floor:.1f} h of recording: "
                     f"about {two:.1f} h on this 2-core machine, {sixteen * 60:.0f} minutes on 16 workers, "
                     f"{many * 60:.0f} minutes on 64.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
