"""The instructor's command line.

    python -m autograder list
    python -m autograder grade solutions/linear/linear.ipynb
    python -m autograder grade submitted/*/linear/linear.ipynb --csv grades.csv
    python -m autograder grade my.ipynb --chapter linear --layer Linear --parts forward backward

A notebook's chapter is its file name (`linear.ipynb` -> `linear`) unless --chapter says
otherwise; every layer of that chapter is graded. The exit code is 0 when everything passed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from .engine import grade, resolve_device
from .notebook import load
from .report import Report, Result
from .spec import CHAPTERS, PARTS


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="grading", unit="layer", file=sys.stderr, leave=False)


def cmd_list(_: argparse.Namespace) -> int:
    for chapter, names in CHAPTERS.items():
        print(f"{chapter:<16} {', '.join(names)}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    jobs = []
    for path in map(Path, args.notebooks):
        chapter = args.chapter or path.stem
        if chapter not in CHAPTERS:
            print(f"{path}: unknown chapter {chapter!r} (use --chapter; chapters: {', '.join(CHAPTERS)})",
                  file=sys.stderr)
            return 2
        names = args.layer or CHAPTERS[chapter]
        jobs += [(path, name) for name in names]
    rows, all_passed, loaded = [], True, {}
    show_bar = len(jobs) > 1 and sys.stderr.isatty() and not args.quiet
    for path, name in _progress(jobs, show_bar):
        if path not in loaded:
            loaded[path] = load(path)
        nb = loaded[path]
        cls = nb.classes.get(name)
        suites = ["public", "hidden"] if args.suite == "all" else [args.suite]
        for suite in suites:
            if cls is None:
                report = Report(name, tuple(args.parts or PARTS))
                why = f"the notebook defines no class named {name}"
                if nb.errors:
                    why += f" (a cell failed: {nb.errors[0]})"
                report.results = [Result(p, name, False, why) for p in report.parts]
            else:
                report = grade(name, cls, parts=args.parts, device=args.device, suite=suite, seed=args.seed)
            all_passed &= report.passed
            rows.append((str(path), name, suite, report.score, report.max_score, report.passed))
            if not args.quiet:
                print(f"== {path}")
                print(report)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["notebook", "layer", "suite", "score", "max_score", "passed"])
            writer.writerows(rows)
    total = sum(r[3] for r in rows), sum(r[4] for r in rows)
    print(f"{sum(r[5] for r in rows)}/{len(rows)} layer grades passed "
          f"({total[0]:g}/{total[1]:g} points, device {resolve_device(args.device)})")
    return 0 if all_passed else 1


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
    args = parser.parse_args(argv)
    return args.run(args)
