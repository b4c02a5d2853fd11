"""nbgrader configuration of the Layers course. The course directory is this folder."""

import warnings

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, ClearSolutions, ComputeChecksums, GetGrades, IgnorePattern,
                                    IncludeHeaderFooter, InstantiateTests, LimitOutput, LockCells, SaveAutoGrades,
                                    SaveCells)

from autograder.nbgrader_ext import ClearHiddenTracebacks, OptionalHelpers, TrustedGrading

c = get_config()  # noqa: F821 - injected by nbgrader

# autograde adds students it has not seen in a way SQLAlchemy 2 warns about, harmlessly, on every
# submission; keep the instructor's terminal for what matters
warnings.filterwarnings("ignore", message="Object of type <Submitted", module="nbgrader")

# --- where things live ---------------------------------------------------------------------------
c.CourseDirectory.course_id = "layers"
c.CourseDirectory.source_directory = "solutions"  # instructor notebooks: the single source of truth
c.CourseDirectory.release_directory = "exercises"  # generated student notebooks, committed
# submitted/, autograded/, feedback/ and gradebook.db keep nbgrader's defaults (all git-ignored)

# --- generating exercises ------------------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# helper cells (grade ids ending in _helpers) are optional: their stub raises nothing
c.GenerateAssignment.preprocessors = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, OptionalHelpers,
                                      ClearOutput, CheckCellMetadata, ComputeChecksums, SaveCells, ClearHiddenTests,
                                      ClearMarkScheme, ComputeChecksums, CheckCellMetadata]

# --- autograding: the trusted path ----------------------------------------------------------------
# nbgrader's Execute would run the student's notebook, test cells included, in one kernel that the
# student's code controls. TrustedGrading takes its place: the student's code cells run in a fresh
# sandbox (bubblewrap; see autograder/sandbox.py), the test cells (restored from the gradebook by
# nbgrader) are read, not run, and graded in nbgrader's own process against torch. The rest of
# nbgrader's pipeline is unchanged.
c.Autograde.autograde_preprocessors = [TrustedGrading, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.TrustedGrading.limits = ""  # e.g. "call=60,cell=60,budget=600" (seconds): see autograder.sandbox.Limits
c.TrustedGrading.seed = None  # the hidden suites' seed; None draws one per notebook (shown in its reports)

# --- feedback: hidden tests must stay hidden ------------------------------------------------------
# nbgrader shows them by default; and a failing visible test's traceback quotes the hidden lines
# of its cell, so those are scrubbed from error outputs first.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTracebacks, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
