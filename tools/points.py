"""List or change the points of a solution notebook's graded cells.

    python tools/points.py solutions/linear/linear.ipynb                         # list
    python tools/points.py solutions/linear/linear.ipynb linear_linear_forward=3  # change

Each graded cell of a notebook grades one part of one layer (or a few parts together) and
carries its points in its nbgrader metadata (`grade_id` `<chapter>_<layer>_<part>`). nbgrader
gives a cell all its points when it runs without error and none otherwise. After changing
points, regenerate the exercises (`make exercises`), which also records the new maximum in the
gradebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def graded_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/points.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, help="a solution notebook (solutions/<chapter>/<chapter>.ipynb)")
    parser.add_argument("changes", nargs="*", metavar="GRADE_ID=POINTS", help="new points of graded cells")
    args = parser.parse_args(argv)

    nb = nbformat.read(args.notebook, as_version=4)
    cells = {c.metadata.nbgrader.grade_id: c for c in graded_cells(nb)}
    for change in args.changes:
        grade_id, _, value = change.partition("=")
        if grade_id not in cells:
            print(f"no graded cell {grade_id!r}; graded cells: {', '.join(cells)}", file=sys.stderr)
            return 2
        try:
            points = float(value)
        except ValueError:
            print(f"{change!r}: points must be a number", file=sys.stderr)
            return 2
        if points <= 0:
            print(f"{change!r}: points must be positive (delete the cell's tests to drop a part)", file=sys.stderr)
            return 2
        cells[grade_id].metadata.nbgrader.points = int(points) if points.is_integer() else points
    if args.changes:
        nbformat.write(nb, str(args.notebook))

    width = max(map(len, cells), default=0)
    for grade_id, cell in cells.items():
        print(f"{grade_id:<{width}}  {cell.metadata.nbgrader.points:g}")
    print(f"{'total':<{width}}  {sum(c.metadata.nbgrader.points for c in cells.values()):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
