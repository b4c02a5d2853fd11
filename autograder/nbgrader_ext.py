"""nbgrader add-ons of the course (configured in nbgrader_config.py)."""

from __future__ import annotations

import re

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Integer, Unicode

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


class OptionalHelpers(Preprocessor):
    """A helper cell (a solution cell whose grade id ends in `_helpers`) is optional: its stub keeps
    `# YOUR CODE HERE` but not the `raise NotImplementedError()` that every other stub has, so that a
    student who writes no helper can still run the notebook from top to bottom. Runs right after
    nbgrader's ClearSolutions in generate_assignment."""

    enabled = Bool(True)

    def preprocess_cell(self, cell, resources, index):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        if cell.cell_type == "code" and grade_id.endswith("_helpers"):
            cell.source = "\n".join(line for line in cell.source.splitlines()
                                    if line.strip() != "raise NotImplementedError()")
        return cell, resources


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


class TrustedGrading(Preprocessor):
    """Grades a notebook on the trusted path, in place of nbgrader's Execute.

    The student's code cells run in a fresh sandbox (their printed output and errors become their
    outputs, capped); the test cells are never run anywhere: the judge reads which checks they
    make (see `trusted.checks_of`), grades them in this process against torch, and gives each one
    its report as output, with an error output when it failed, so that nbgrader's own scoring,
    feedback and export work unchanged. Configure in nbgrader_config.py:

        c.Autograde.autograde_preprocessors = [TrustedGrading, IgnorePattern, ...]
        c.TrustedGrading.limits = "call=60,cell=60,budget=600"   # seconds (see sandbox.Limits)
        c.TrustedGrading.seed = None                            # the hidden suite's; None: random
    """

    enabled = Bool(True)
    seed = Integer(None, allow_none=True, help="seed of the hidden suites (None: a random one per notebook)"
                   ).tag(config=True)
    limits = Unicode("", help="limits of the student's process, e.g. 'call=60,cell=60' (sandbox.Limits)"
                     ).tag(config=True)
    device = Unicode("", help="cpu, cuda, ... (default: $AUTOGRADER_DEVICE, else CUDA when present)").tag(config=True)

    def preprocess(self, nb, resources):
        from .sandbox import Limits
        from .trusted import Submission

        overrides = {}
        for item in filter(None, self.limits.split(",")):
            key, _, value = item.partition("=")
            overrides[key.strip()] = float(value)
        limits = Limits.from_env(**overrides)
        with Submission(nb, seed=self.seed, device=self.device or None, limits=limits) as sub:
            graded = sub.grade_cells()
            for index, result in sub.session.cell_results.items():
                apply_code_outputs(nb.cells[index], result)
            for index, verdict in graded.items():
                apply_verdict(nb.cells[index], verdict.passed, verdict.text)
            resources.setdefault("trusted", {}).update(
                seed=sub.seed, isolation=sub.isolation, flags=[str(f) for f in sub.flags], faults=sub.faults(),
                reports=[r for r in sub.reports.values()])
        return nb, resources


def apply_code_outputs(cell, result: dict) -> None:
    """The outputs the student's cell produced in the sandbox (capped there)."""
    outputs = []
    if result.get("stdout"):
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=result["stdout"]))
    error = result.get("error")
    if error:
        outputs.append(nbformat.v4.new_output("error", ename=error["ename"], evalue=error["evalue"],
                                              traceback=[line.rstrip("\n") for line in error["traceback"]]))
    if result.get("fault"):
        outputs.append(nbformat.v4.new_output("error", ename="StoppedCell", evalue=result["fault"],
                                              traceback=[f"StoppedCell: this cell {result['fault']}; the cells "
                                                         "after it were run without it"]))
    cell["outputs"] = outputs


def apply_verdict(cell, passed: bool, text: str) -> None:
    """A test cell's output: its report on stdout, and an error when it failed (nbgrader then gives it
    no points)."""
    cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
    if not passed:
        first = text.strip().splitlines()[0] if text.strip() else "failed"
        cell["outputs"].append(nbformat.v4.new_output("error", ename="AssertionError", evalue=first,
                                                      traceback=["AssertionError: " + line for line in
                                                                 text.splitlines()[:1]] + text.splitlines()[1:]))
    cell["execution_count"] = None


class ApplyVerdicts(Preprocessor):
    """In nbgrader's Autograde pipeline, in place of the grading: the worker's result for this
    notebook (its test cells' verdicts, its code cells' outputs), applied as TrustedGrading would."""

    enabled = Bool(True)
    results: dict = {}  # (student, notebook) -> result, filled by the coordinator

    def preprocess(self, nb, resources):
        from .batch import _sha, _source

        key = (resources["nbgrader"]["student"], resources["nbgrader"]["notebook"])
        result = self.results[key]
        for index, output in result["code"].items():
            i = int(index)
            if i < len(nb.cells) and _sha(_source(nb.cells[i])) == output.get("source_sha"):
                apply_code_outputs(nb.cells[i], output)
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in result["verdicts"]:
                verdict = result["verdicts"][grade_id]
                apply_verdict(cell, verdict["passed"], verdict["text"])
        return nb, resources
