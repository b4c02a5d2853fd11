"""nbgrader add-ons of the course (configured in nbgrader_config.py)."""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def hidden_lines(source: str) -> list[str]:
    """The stripped lines of a cell's hidden-test blocks, markers included."""
    lines, inside = [], False
    for line in source.splitlines():
        s = line.strip()
        if s.startswith(BEGIN):
            inside = True
        if inside and s:
            lines.append(s)
        if s.startswith(END):
            inside = False
    return lines


class ClearHiddenTracebacks(Preprocessor):
    """Remove hidden-test source from error outputs, before feedback is generated.

    nbgrader's ClearHiddenTests clears hidden tests from a cell's source, but when a visible test
    in the same cell fails, the traceback quotes the lines around it, hidden ones included. Run
    this before ClearHiddenTests, which removes the markers it needs.
    """

    enabled = Bool(True)  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            return cell, resources
        secrets = hidden_lines(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [self.scrub(frame, secrets) for frame in output.get("traceback", [])]
        return cell, resources

    @staticmethod
    def scrub(text: str, secrets: list[str]) -> str:
        kept = [line for line in text.split("\n") if not any(s in _ANSI.sub("", line) for s in secrets)]
        return "\n".join(kept)
