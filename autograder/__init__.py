"""Layers' autograder: grades a student's layer against torch's own.

    from autograder import grade, check, CHAPTERS
    report = grade("Linear", MyLinear)   # never raises for the student's faults
    report.passed, report.score, report.max_score, report.failures
    check("Linear", MyLinear)            # prints the report, or raises AssertionError(report)
    CHAPTERS["linear"]                   # ["Linear"]
"""

from . import specs as _specs  # noqa: F401  (fills the registry)
from .engine import check, grade, resolve_device
from .report import Report
from .spec import CHAPTERS, PARTS, SPECS

__all__ = ["CHAPTERS", "PARTS", "SPECS", "Report", "check", "grade", "resolve_device"]
