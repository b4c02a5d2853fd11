"""Grading a whole class: `python -m autograder autograde <chapter>`, in parallel and resumable.

    coordinator (this process)                       workers (processes, or Dask workers)
      submitted/*/<chapter>/*.ipynb  --job-->          judge + a sandbox per submission
      journal, gradebook, autograded/  <--result--     (trusted.Submission, as nbgrader's path)

The coordinator reads the assignment's test and locked cells from nbgrader's gradebook (so the
workers grade the instructor's cells, as `nbgrader autograde` does), sends one job per submitted
notebook to the workers, and for each result, as it comes, runs nbgrader's own Autograde
converter with the result in place of the grading (`nbgrader_ext.ApplyVerdicts`): the gradebook
(SQLite, one writer: this process) and `autograded/<student>/<chapter>/` are written by nbgrader itself, so
`nbgrader export`, `generate_feedback` and formgrader work unchanged. Then it appends the
submission to a journal (`autograded/<chapter>-journal.jsonl`, flushed and synced) with its
notebook's hash, the grader's version and the hidden suite's seed. A batch killed at any moment
and started again grades only what is missing or changed; seeds are derived from the journal's
base seed and the notebook's hash, so the rerun gives what an uninterrupted run would have.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def grader_version() -> str:
    """The package's version and a digest of its source: a changed grader regrades everything."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        from importlib.metadata import version

        number = version("layers-autograder")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        number = "0"
    return f"{number}+{digest.hexdigest()[:12]}"


# --- the worker's side -------------------------------------------------------------------------------

def restore_cells(nb: dict, source_cells: dict) -> None:
    """What nbgrader's OverwriteCells does to a submission, for the cells that matter to the grade:
    a locked cell (set-up, tests) gets the instructor's source and type back; a cell whose id the
    gradebook does not know is no longer a graded cell."""
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict) or "grade_id" not in meta:
            continue
        known = source_cells.get(meta["grade_id"])
        if known is None:
            del meta["grade_id"]
            meta["grade"] = False
            continue
        cell["cell_type"] = known["cell_type"]
        meta["locked"] = known["locked"]
        if known["locked"]:
            cell["source"] = known["source"]
        if known.get("grade") is not None:
            meta["grade"] = known["grade"]


def grade_job(job: dict) -> dict:
    """Grade one submitted notebook through the trusted path (runs in a worker process). Never raises
    for the submission's faults: those are in the result."""
    from .sandbox import Limits
    from .trusted import Submission

    start = time.perf_counter()
    nb = json.loads(job["notebook"])
    restore_cells(nb, job["source_cells"])
    limits = Limits.from_env(**job.get("limits", {}))
    with Submission(nb, seed=job["seed"], device=job.get("device"), limits=limits) as sub:
        graded = sub.grade_cells()
        reports = []
        for (layer, _, suite), report in sub.reports.items():
            reports.append({"layer": layer, "suite": suite,
                            "parts": {p: report.part_passed(p) for p in report.parts},
                            "failures": [[r.part, r.detail, r.where] for r in report.results if not r.ok][:200]})
        code = {str(i): {**r, "source_sha": _sha(_source(sub.cells[i]))} for i, r in sub.session.cell_results.items()}
        verdicts = {v.grade_id: {"passed": v.passed, "text": v.text} for v in graded.values()}
        return {"student": job["student"], "notebook": job["notebook_name"], "sha256": job["sha256"],
                "seed": sub.seed, "verdicts": verdicts,
                "code": code, "reports": reports, "flags": [str(f) for f in sub.flags], "faults": sub.faults(),
                "isolation": sub.isolation, "seconds": time.perf_counter() - start,
                "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _warm_worker(limits: dict) -> None:
    """Start the worker's sandbox template before the first job arrives (pool initializer)."""
    from .sandbox import shared

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    shared().start()


# --- the coordinator's side: nbgrader writes what the workers graded ----------------------------------

@dataclass
class Journal:
    """Append-only record of graded submissions: one JSON line each, flushed and synced."""

    path: Path
    base_seed: int = 0
    entries: dict = field(default_factory=dict)  # (student, notebook) -> latest entry

    @classmethod
    def open(cls, path: Path, seed: int | None) -> Journal:
        journal = cls(path)
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill: that submission is graded again
                if entry.get("kind") == "batch":
                    journal.base_seed = int(entry["base_seed"])
                elif entry.get("kind") == "graded":
                    journal.entries[(entry["student"], entry["notebook"])] = entry
        if not journal.base_seed:
            journal.base_seed = seed if seed is not None else secrets.randbits(31)
            journal.append({"kind": "batch", "base_seed": journal.base_seed, "started": time.time()})
        return journal

    def append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if entry.get("kind") == "graded":
            self.entries[(entry["student"], entry["notebook"])] = entry


@dataclass
class Summary:
    graded: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)  # (student, why) of submissions that could not be graded
    seconds: float = 0.0
    writing: float = 0.0  # of which in nbgrader's converter and the journal (this process, one at a time)
    report: Path | None = None


def _course(course: Path):
    """nbgrader's configuration and course directory for the course at `course`."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    cfg = course / "nbgrader_config.py"
    if cfg.exists():
        exec(compile(cfg.read_text(), str(cfg), "exec"), {"get_config": lambda: config, "__file__": str(cfg)})  # noqa: S102
    config.CourseDirectory.root = str(course)
    return config, CourseDirectory(config=config)


def _assignment_cells(coursedir, chapter: str) -> dict[str, dict]:
    """notebook name -> grade_id -> the instructor's cell (source, type, locked, grade), from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        try:
            assignment = gb.find_assignment(chapter)
        except MissingEntry:
            raise SystemExit(f"the gradebook has no assignment {chapter!r}: run `nbgrader generate_assignment "
                             f"{chapter}` first") from None
        cells = {}
        for notebook in assignment.notebooks:
            graded = {c.name for c in notebook.grade_cells}
            cells[notebook.name] = {c.name: {"source": c.source, "cell_type": c.cell_type, "locked": c.locked,
                                             "grade": c.name in graded} for c in notebook.source_cells}
        return cells


class Coordinator:
    """One batch: which submissions to grade, where, and writing what comes back."""

    def __init__(self, chapter: str, course: Path = Path("."), *, workers: int | None = None,
                 scheduler: str | None = None, students: Iterable[str] = (), force: bool = False,
                 seed: int | None = None, limits: dict | None = None, device: str | None = None,
                 progress: bool | None = None):
        self.chapter, self.course = chapter, Path(course).resolve()
        self.workers = workers or os.cpu_count() or 1
        self.scheduler, self.students, self.force = scheduler, set(students), force
        self.seed, self.limits, self.device = seed, dict(limits or {}), device
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.config, self.coursedir = _course(self.course)
        self.autograded = Path(self.coursedir.root) / self.coursedir.autograded_directory
        self.journal = Journal.open(self.autograded / f"{chapter}-journal.jsonl", seed)
        self.version = grader_version()

    # --- what to grade ------------------------------------------------------------------------------
    def submissions(self) -> list[tuple[str, Path]]:
        """(student, notebook) of every submission of the chapter, as nbgrader's directories lay them out."""
        import glob
        import re

        pattern = self.coursedir.format_path(self.coursedir.submitted_directory, "*", self.chapter)
        regexp = re.compile(self.coursedir.format_path(self.coursedir.submitted_directory, "(?P<student_id>.*)",
                                                       re.escape(self.chapter), escape=True))
        found = []
        for folder in sorted(glob.glob(pattern)):
            match = regexp.fullmatch(folder)
            if not match or (self.students and match["student_id"] not in self.students):
                continue
            found += [(match["student_id"], nb) for nb in sorted(Path(folder).glob("*.ipynb"))]
        return found

    def seed_for(self, student: str, sha: str) -> int:
        if self.seed is not None:
            return self.seed
        return int(hashlib.sha256(f"{self.journal.base_seed}:{self.chapter}:{student}:{sha}".encode()).hexdigest()[:8],
                   16) & 0x7FFFFFFF

    def graded_already(self, student: str, name: str, sha: str) -> bool:
        entry = self.journal.entries.get((student, name))
        done = Path(self.coursedir.format_path(self.coursedir.autograded_directory, student, self.chapter)) / \
            f"{name}.ipynb"
        return bool(entry and entry["sha256"] == sha and entry["version"] == self.version and done.exists())

    # --- running -------------------------------------------------------------------------------------
    def run(self) -> Summary:
        from nbgrader.converters import Autograde

        from .nbgrader_ext import ApplyVerdicts, TrustedGrading

        start = time.perf_counter()
        summary = Summary()
        cells = _assignment_cells(self.coursedir, self.chapter)
        jobs = []
        for student, path in self.submissions():
            name = path.stem
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if not self.force and self.graded_already(student, name, sha):
                summary.skipped += 1
                continue
            if name not in cells:
                summary.errors.append((student, f"{path.name} is not a notebook of the assignment"))
                continue
            from .trusted import MAX_NOTEBOOK

            if len(data) > MAX_NOTEBOOK:
                summary.errors.append((student, f"{path.name} is larger than {MAX_NOTEBOOK // 2 ** 20} MB"))
                continue
            try:
                text = data.decode("utf-8")
                json.loads(text)
            except (UnicodeDecodeError, ValueError, RecursionError):
                summary.errors.append((student, f"{path.name} is not a readable notebook"))
                continue
            jobs.append({"student": student, "notebook_name": name, "notebook": text, "sha256": sha,
                         "source_cells": cells[name], "seed": self.seed_for(student, sha), "limits": self.limits,
                         "device": self.device})
        preprocessors = [ApplyVerdicts if p is TrustedGrading else p
                         for p in self.config.Autograde.autograde_preprocessors] \
            if "autograde_preprocessors" in self.config.Autograde else None
        if preprocessors is None or ApplyVerdicts not in preprocessors:
            raise SystemExit("nbgrader_config.py must grade with autograder.nbgrader_ext.TrustedGrading "
                             "(c.Autograde.autograde_preprocessors)")
        self.config.Autograde.autograde_preprocessors = preprocessors
        self.config.Autograde.create_student = True
        converter = Autograde(coursedir=self.coursedir, config=self.config)
        converter.force = True
        converter.log.setLevel("WARNING")
        bar = None
        if self.progress and jobs:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc=f"grading {self.chapter}", unit="notebook", file=sys.stderr,
                       dynamic_ncols=True)
        troubles = 0
        for result in self.execute(jobs, summary):
            began = time.perf_counter()
            ApplyVerdicts.results[(result["student"], result["notebook"])] = result
            try:
                self.coursedir.student_id, self.coursedir.assignment_id = result["student"], self.chapter
                self.coursedir.notebook_id = result["notebook"]
                converter.start()
            except Exception as exc:  # noqa: BLE001 - nbgrader refused this one: report it, go on
                summary.errors.append((result["student"], f"nbgrader could not record it: {exc}"))
                continue
            finally:
                ApplyVerdicts.results.pop((result["student"], result["notebook"]), None)
            score, max_score = self.score(result)
            self.journal.append({"kind": "graded", "student": result["student"], "notebook": result["notebook"],
                                 "sha256": result["sha256"], "version": self.version, "seed": result["seed"],
                                 "score": score, "max_score": max_score, "verdicts":
                                     {k: v["passed"] for k, v in result["verdicts"].items()},
                                 "reports": result["reports"], "flags": result["flags"], "faults": result["faults"],
                                 "isolation": result["isolation"], "seconds": result["seconds"],
                                 "worker": result["worker"], "at": time.time()})
            summary.graded += 1
            summary.writing += time.perf_counter() - began
            troubles += bool(result["faults"] or result["flags"])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(faults_or_flags=troubles, refresh=False)
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - start
        from .classreport import write_report

        summary.report = write_report(self)
        return summary

    def score(self, result: dict) -> tuple[float, float]:
        """The submission's nbgrader score, as the gradebook now holds it."""
        from nbgrader.api import Gradebook

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            sub = gb.find_submission_notebook(result["notebook"], self.chapter, result["student"])
            return float(sub.score), float(sub.max_score)

    def execute(self, jobs: list[dict], summary: Summary):
        """Yield each job's result as it finishes, from a process pool or a Dask cluster."""
        if not jobs:
            return
        if self.scheduler:
            yield from self._dask(jobs, summary)
        else:
            yield from self._pool(jobs, summary)

    def _pool(self, jobs: list[dict], summary: Summary):
        pending = {(j["student"], j["notebook_name"]): j for j in jobs}
        deaths: dict = {}
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["autograder.batch", "autograder.trusted"])
        while pending:
            broken = False
            with concurrent.futures.ProcessPoolExecutor(max_workers=min(self.workers, len(pending)),
                                                        mp_context=context, initializer=_warm_worker,
                                                        initargs=(self.limits,)) as pool:
                futures = {pool.submit(grade_job, job): key for key, job in pending.items()}
                for future in concurrent.futures.as_completed(futures):
                    key = futures[future]
                    try:
                        result = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # noqa: BLE001 - a grader error on one submission
                        summary.errors.append((key[0], f"the grader failed: {type(exc).__name__}: {exc}"))
                        pending.pop(key, None)
                        continue
                    pending.pop(key, None)
                    yield result
            if broken:  # a worker died (not a submission: those die in their sandbox); the rest go again
                for key in list(pending):
                    deaths[key] = deaths.get(key, 0) + 1
                    if deaths[key] > 3:
                        summary.errors.append((key[0], "a grading worker died three times on it"))
                        pending.pop(key)

    def _dask(self, jobs: list[dict], summary: Summary):
        from distributed import Client, as_completed

        with Client(self.scheduler) as client:
            futures = {}
            for job in jobs:
                key = f"grade-{self.chapter}-{job['student']}-{job['notebook_name']}-{job['sha256'][:12]}-" \
                      f"{secrets.token_hex(4)}"
                futures[client.submit(grade_job, job, key=key, pure=False, retries=2)] = job
            for future in as_completed(futures):
                job = futures[future]
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated deaths
                    summary.errors.append((job["student"], f"the cluster could not grade it: {type(exc).__name__}: "
                                                           f"{str(exc)[:200]}"))
