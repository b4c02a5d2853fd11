"""The engine's contract, shown on Linear: the API, robustness to any student fault, silence on
stderr, device handling and the rules it enforces whatever the layer."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import autograder
from autograder import CHAPTERS, PARTS, check, grade, resolve_device
from tests.conftest import solution_classes

Linear = solution_classes("linear")["Linear"]


def test_the_api_reports_passed_score_max_score_and_failures():
    report = grade("Linear", Linear)
    assert report.passed is True
    assert (report.score, report.max_score) == (5.0, 5.0)
    assert report.failures == []
    text = str(report)
    assert text.startswith("Linear: passed") and all(part in text for part in PARTS)


def test_chapters_list_layers_in_book_order():
    assert CHAPTERS["linear"] == ["Linear"]
    assert list(CHAPTERS)[0] == "linear"


def test_an_unknown_layer_is_a_key_error_listing_the_known_ones():
    with pytest.raises(KeyError, match="Linear"):
        grade("Linaer", Linear)


def test_an_unknown_part_is_refused():
    with pytest.raises(ValueError, match="forwrd"):
        grade("Linear", Linear, parts=["forwrd"])


def test_parts_selects_what_is_run_and_scored():
    report = grade("Linear", Linear, parts=["forward", "state"])
    assert report.parts == ("state", "forward") and report.max_score == 2.0
    assert {r.part for r in report.results} == {"state", "forward"}


class Broken:
    """Student classes that break in every way a class can."""

    class InitRaises(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            raise ValueError("oops")

    class ForwardRaises(Linear):
        def forward(self, input):
            raise RuntimeError("boom")

    class ReturnsNone(Linear):
        def forward(self, input):
            return None

    class NotAModule:
        def __init__(self, *args, **kwargs):
            pass

    class StateDictRaises(Linear):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("no state")


@pytest.mark.parametrize("cls, words", [
    (Broken.InitRaises, "the constructor raised ValueError: oops"),
    (Broken.ForwardRaises, "forward raised RuntimeError: boom in forward"),
    (Broken.ReturnsNone, "output is a None, expected exactly a torch.Tensor"),
    (Broken.NotAModule, "NotAModule is not an nn.Module subclass"),
    (Broken.StateDictRaises, "state_dict() raised RuntimeError"),
    (lambda *a, **k: 42, "int is not an nn.Module subclass"),
])
def test_grading_never_raises_for_a_student_fault(cls, words):
    report = grade("Linear", cls)
    assert not report.passed
    assert any(words in f for f in report.failures), str(report)


def test_a_layer_that_cannot_be_built_scores_zero():
    report = grade("Linear", Broken.InitRaises)
    assert report.score == 0 and len(report.failures) >= len(PARTS)


def test_check_prints_a_passing_report_and_returns_nothing(capsys):
    assert check("Linear", Linear, parts=["shape"]) is None
    out = capsys.readouterr()
    assert "Linear: passed" in out.out and out.err == ""


def test_check_raises_an_assertion_error_carrying_the_report():
    with pytest.raises(AssertionError, match="forward raised RuntimeError: boom"):
        check("Linear", Broken.ForwardRaises)


class Noisy(Linear):
    def forward(self, input):
        warnings.warn("careful", UserWarning, stacklevel=2)
        print("debugging", input.shape)
        return super().forward(input)


def test_grading_writes_nothing_to_stderr_and_keeps_warnings_as_notes(capfd):
    """nbgrader gives a test cell with any stderr output zero points."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the grader would raise here
        report = grade("Linear", Noisy)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert report.passed
    assert any("UserWarning: careful" in n for n in report.notes)
    assert any("printed" in n for n in report.notes)


def test_the_hidden_suite_is_reproducible_from_its_seed():
    a, b = grade("Linear", Linear, suite="hidden", seed=7), grade("Linear", Linear, suite="hidden", seed=7)
    assert "seed 7" in str(a)
    assert [r.where for r in a.results] == [r.where for r in b.results]
    c = grade("Linear", Linear, suite="hidden", seed=8)
    assert [r.where for r in a.results] != [r.where for r in c.results]


def test_an_unknown_suite_is_refused():
    with pytest.raises(ValueError, match="suite"):
        grade("Linear", Linear, suite="secret")


def test_the_device_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_DEVICE", "meta")
    assert resolve_device() == torch.device("meta")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("AUTOGRADER_DEVICE")
    assert resolve_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
def test_the_reference_passes_on_the_gpu():
    report = grade("Linear", Linear, device="cuda")
    assert report.passed and "cuda" in str(report), str(report)


def test_tf32_is_restored_after_grading():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        grade("Linear", Linear, parts=["shape"])
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_one_layers_full_grading_is_fast_enough_to_report():
    """Not a timing assertion (machines are noisy; see bench/): the report is complete and the run
    of every part of every case is recorded."""
    report = grade("Linear", Linear)
    cases = {r.where for r in report.results if r.part == "forward"}
    assert len(cases) == len(autograder.SPECS["Linear"].cases)


# --- torch's calling conventions ------------------------------------------------------------------

class RenamedInput(Linear):
    def forward(self, x):
        return super().forward(x)


class ExtraParameter(Linear):
    def forward(self, input, scale=1.0):
        return super().forward(input) * scale


class PositionalOnly(Linear):
    def forward(self, *inputs):
        return super().forward(*inputs)


def test_a_forward_with_other_parameter_names_fails_naming_the_difference():
    from tests.conftest import assert_fails_naming

    assert_fails_naming(grade("Linear", RenamedInput), "state", "forward takes (x) where torch's takes (input)")
    assert_fails_naming(grade("Linear", ExtraParameter), "state", "forward takes (input, scale=1.0) where torch's "
                                                                  "takes (input)")


def test_one_case_calls_forward_by_keyword_as_torchs_tests_do():
    from tests.conftest import assert_fails_naming

    report = grade("Linear", PositionalOnly)
    assert_fails_naming(report, "shape", "· by keyword", "unexpected keyword argument 'input'")
    assert sum("by keyword" in f for f in report.failures) >= 1
    hidden = grade("Linear", PositionalOnly, suite="hidden", seed=1)
    assert any("by keyword" in f for f in hidden.failures), str(hidden)
    assert grade("Linear", Linear, suite="hidden", seed=1).passed  # torch's names pass, by keyword too


# --- the generic diagnosis: the argument whose default (or another value) reproduces the output ----------

def without_mistakes(monkeypatch, name: str) -> None:
    """The spec of `name` without its hand-written mistakes: only the generic diagnosis is left."""
    from dataclasses import replace

    from autograder import SPECS

    monkeypatch.setitem(SPECS, name, replace(SPECS[name], mistakes=(), buffer_mistakes=()))


def test_an_ignored_constructor_argument_is_named_with_torchs_default(monkeypatch):
    from tests.conftest import assert_fails_naming

    without_mistakes(monkeypatch, "ELU")
    ELU = solution_classes("activations")["ELU"]

    class AlphaIgnored(ELU):
        def forward(self, input):
            return torch.where(input > 0, input, torch.expm1(input.clamp(max=0)))

    assert_fails_naming(grade("ELU", AlphaIgnored), "forward", "· alpha_2", "`alpha=2.0` is ignored (torch's "
                                                                             "default is alpha=1.0)")


def test_an_ignored_forward_argument_is_named(monkeypatch):
    from tests.conftest import assert_fails_naming

    without_mistakes(monkeypatch, "MultiheadAttention")
    Attention = solution_classes("transformer")["MultiheadAttention"]

    class PaddingIgnored(Attention):
        def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
            return super().forward(query, key, value, None, need_weights, attn_mask, average_attn_weights,
                                   is_causal)

    assert_fails_naming(grade("MultiheadAttention", PaddingIgnored), "forward",
                        "forward's `key_padding_mask` argument is ignored")


def test_another_value_of_a_choice_is_named():
    from tests.conftest import assert_fails_naming

    Conv2d = solution_classes("conv")["Conv2d"]

    class ReflectRepeatsTheEdge(Conv2d):
        """Reflect padding that repeats the edge value: that is replicate."""

        def forward(self, input):
            asked = self.padding_mode
            self.padding_mode = "replicate" if asked == "reflect" else asked
            try:
                return super().forward(input)
            finally:
                self.padding_mode = asked

    assert_fails_naming(grade("Conv2d", ReflectRepeatsTheEdge), "forward",
                        "padding_mode='replicate' is used in place of padding_mode='reflect'")


def test_an_ignored_argument_shows_in_a_buffer_too(monkeypatch):
    from tests.conftest import assert_fails_naming

    without_mistakes(monkeypatch, "BatchNorm1d")
    BatchNorm1d = solution_classes("normalization")["BatchNorm1d"]

    class MomentumNoneIgnored(BatchNorm1d):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.momentum is None:
                self.momentum = 0.1

    assert_fails_naming(grade("BatchNorm1d", MomentumNoneIgnored), "state", "it matches the buffer when "
                        "`momentum=None` is ignored (torch's default is momentum=0.1)")
