"""The instructor's command line.

    python -m autograder list
    python -m autograder grade solutions/linear/linear.ipynb
    python -m autograder grade submitted/*/linear/linear.ipynb --csv grades.csv
    python -m autograder grade my.ipynb --chapter linear --layer Linear --parts forward backward
    python -m autograder autograde linear --workers 2          # a class, into nbgrader's gradebook
    python -m autograder autograde linear --scheduler tcp://head:8786

A notebook's chapter is its file name (`linear.ipynb` -> `linear`) unless --chapter says
otherwise; every layer of that chapter is graded, on the trusted path: the notebook's code runs in
a sandbox, the grading here (see autograder/trusted.py). Each notebook's CSV rows are written as
soon as it is graded. The exit code is 0 when everything passed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from .engine import resolve_device
from .report import Report, Result
from .sandbox import Limits, shared
from .spec import CHAPTERS, PARTS
from .trusted import MAX_NOTEBOOK, Submission


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="grading", unit="layer", file=sys.stderr, leave=False)


def cmd_list(_: argparse.Namespace) -> int:
    for chapter, names in CHAPTERS.items():
        print(f"{chapter:<16} {', '.join(names)}")
    return 0


def read_notebook(path: Path) -> tuple[dict | None, str]:
    """A submitted notebook's JSON, or None and why it cannot be read (never an exception)."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK:
            return None, f"the notebook is larger than {MAX_NOTEBOOK // 2 ** 20} MB"
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"the notebook cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "the notebook cannot be read (no cells)"
    return nb, ""


def cmd_grade(args: argparse.Namespace) -> int:
    jobs = []
    for path in map(Path, args.notebooks):
        chapter = args.chapter or path.stem
        if chapter not in CHAPTERS:
            print(f"{path}: unknown chapter {chapter!r} (use --chapter; chapters: {', '.join(CHAPTERS)})",
                  file=sys.stderr)
            return 2
        jobs.append((path, args.layer or CHAPTERS[chapter]))
    suites = ["public", "hidden"] if args.suite == "all" else [args.suite]
    parts = tuple(args.parts or PARTS)
    limits = Limits.from_env()
    rows_total, passed_total, points = 0, 0, [0.0, 0.0]
    out = open(args.csv, "w", newline="") if args.csv else None  # noqa: SIM115 - rows are written as they come
    writer = csv.writer(out) if out else None
    if writer:
        writer.writerow(["notebook", "layer", "suite", "score", "max_score", "passed", "seed", "faults", "flags"])
        out.flush()
    all_passed = True
    show_bar = len(jobs) > 1 and sys.stderr.isatty() and not args.quiet
    try:
        for path, names in _progress(jobs, show_bar):
            nb, why = read_notebook(path)
            if nb is None:
                reports = [Report(n, parts, [Result(p, n, False, why) for p in parts]) for n in names for _ in suites]
                seed, faults, flags = "", 0, 0
            else:
                with Submission(nb, seed=args.seed, device=args.device, limits=limits) as sub:
                    reports = [sub.report(n, suite=suite, parts=parts) for n in names for suite in suites]
                    seed, faults, flags = sub.seed, len(sub.faults()), len(sub.flags)
            for report, (name, suite) in zip(reports, [(n, s) for n in names for s in suites]):
                all_passed &= report.passed
                rows_total += 1
                passed_total += report.passed
                points[0] += report.score
                points[1] += report.max_score
                if writer:
                    writer.writerow([str(path), name, suite, report.score, report.max_score, report.passed, seed,
                                     faults, flags])
                if not args.quiet:
                    print(f"== {path}")
                    print(report)
            if out:
                out.flush()
                os.fsync(out.fileno())
            sys.stdout.flush()
    finally:
        if out:
            out.close()
    print(f"{passed_total}/{rows_total} layer grades passed ({points[0]:g}/{points[1]:g} points, "
          f"device {resolve_device(args.device)}, {shared().header})")
    return 0 if all_passed else 1


def cmd_autograde(args: argparse.Namespace) -> int:
    from .batch import Coordinator

    if args.chapter not in CHAPTERS:
        print(f"unknown chapter {args.chapter!r} (chapters: {', '.join(CHAPTERS)})", file=sys.stderr)
        return 2
    limits = {}
    for item in filter(None, (args.limits or "").split(",")):
        key, _, value = item.partition("=")
        limits[key.strip()] = float(value)
    coordinator = Coordinator(args.chapter, Path(args.course), workers=args.workers, scheduler=args.scheduler,
                              students=args.student or (), force=args.force, seed=args.seed, limits=limits,
                              device=args.device, progress=False if args.quiet else None)
    summary = coordinator.run()
    where = args.scheduler or f"{coordinator.workers} worker(s)"
    rate = summary.graded / summary.seconds * 60 if summary.seconds and summary.graded else 0.0
    print(f"{args.chapter}: graded {summary.graded} notebook(s), {summary.skipped} already graded and unchanged, "
          f"in {summary.seconds:.1f} s ({rate:.0f} per minute, {where}; nbgrader's recording "
          f"{summary.writing / max(summary.graded, 1):.2f} s each)")
    for student, why in summary.errors:
        print(f"  not graded: {student}: {why}")
    if summary.report:
        print(f"class report: {summary.report}")
    return 1 if summary.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="chapters and the layers each one grades").set_defaults(run=cmd_list)
    g = sub.add_parser("grade", help="grade the layers a notebook defines")
    g.add_argument("notebooks", nargs="+", help="notebooks (.ipynb) to grade")
    g.add_argument("--chapter", help="chapter of the notebooks (default: the file name)")
    g.add_argument("--layer", nargs="+", help="grade only these layers (torch.nn names)")
    g.add_argument("--parts", nargs="+", choices=PARTS, help="grade only these parts")
    g.add_argument("--suite", choices=["public", "hidden", "all"], default="all")
    g.add_argument("--seed", type=int, help="seed of the hidden suite (default: random, printed)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: $AUTOGRADER_DEVICE, else CUDA if present)")
    g.add_argument("--csv", help="also write one row per notebook, layer and suite to this CSV file")
    g.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    g.set_defaults(run=cmd_grade)
    a = sub.add_parser("autograde", help="grade a class's submissions of a chapter into nbgrader's gradebook, in "
                                         "parallel, resumably (run in the course directory)")
    a.add_argument("chapter", help="the assignment (a chapter slug)")
    a.add_argument("--workers", type=int, help="grading processes (default: one per core)")
    a.add_argument("--scheduler", help="grade on this Dask cluster instead (tcp://host:8786)")
    a.add_argument("--student", nargs="+", help="grade only these students")
    a.add_argument("--force", action="store_true", help="grade again what the journal says is graded")
    a.add_argument("--seed", type=int, help="one hidden-suite seed for every submission (default: one per "
                                            "submission, derived from the journal's)")
    a.add_argument("--limits", help="limits of the students' processes, e.g. call=60,cell=60,budget=600")
    a.add_argument("--device", help="cpu, cuda, ... (default: $AUTOGRADER_DEVICE, else CUDA if present)")
    a.add_argument("--course", default=".", help="the nbgrader course directory (default: here)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(run=cmd_autograde)
    args = parser.parse_args(argv)
    return args.run(args)
