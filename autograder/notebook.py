"""Loading a student's (or the reference) classes from a notebook, without Jupyter.

Runs the notebook's code cells in order in a fresh namespace, except nbgrader test cells (they
would grade, not define) and cells tagged `demo` (the "try it" cells: plots and small
trainings). A cell that raises does not stop the rest: its error is kept, as a student notebook
often has one broken cell and still defines its classes.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: tags of code cells the loader skips
SKIPPED_TAGS = frozenset({"demo"})


@dataclass
class Loaded:
    """What running a notebook's code defined."""

    path: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def classes(self) -> dict[str, type]:
        """Classes defined in the notebook itself (not imported), by name."""
        return {name: obj for name, obj in self.namespace.items()
                if isinstance(obj, type) and obj.__module__ == self.namespace["__name__"]}


def is_test_cell(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def runnable_cells(nb: dict) -> list[tuple[int, str]]:
    """(index, source) of the code cells the loader runs, IPython magics and shell lines removed."""
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or is_test_cell(cell):
            continue
        if SKIPPED_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        cells.append((i, "\n".join(lines) + "\n"))
    return cells


def load(path: str | os.PathLike) -> Loaded:
    """Run a notebook's defining cells; return their namespace and any errors."""
    path = Path(path)
    os.environ.setdefault("MPLBACKEND", "Agg")  # never open a window from a notebook's plots
    nb = json.loads(path.read_text(encoding="utf-8"))
    module = f"notebook_{path.stem}"
    loaded = Loaded(path, {"__name__": module})
    for index, source in runnable_cells(nb):
        filename = f"<{path} cell {index}>"  # the whole path: two notebooks named alike keep their own lines
        # register the source so tracebacks (and the grader's feedback) can quote the line
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            code = compile(source, filename, "exec")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(code, loaded.namespace)  # noqa: S102 - running the notebook is the point
        except Exception as exc:  # noqa: BLE001 - a broken cell is reported, not fatal
            loaded.errors.append(f"cell {index}: {type(exc).__name__}: {exc}")
    return loaded


def load_classes(path: str | os.PathLike) -> dict[str, type]:
    """The classes a notebook defines, by name."""
    return load(path).classes
