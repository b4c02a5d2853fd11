"""nbgrader configuration of the Layers course. The course directory is this folder."""

import warnings

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from autograder.nbgrader_ext import ClearHiddenTracebacks

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

# --- autograding ---------------------------------------------------------------------------------
c.Execute.timeout = 300  # seconds per cell; a full grading of one layer takes a few seconds
c.Execute.interrupt_on_timeout = True

# --- feedback: hidden tests must stay hidden ------------------------------------------------------
# nbgrader shows them by default; and a failing visible test's traceback quotes the hidden lines
# of its cell, so those are scrubbed from error outputs first.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTracebacks, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
