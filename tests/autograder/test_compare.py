"""Output comparison: exact structure first, then values with explicit tolerances."""

import torch

from autograder import compare


def test_a_one_element_tensor_does_not_match_a_constant_map():
    """torch.allclose broadcasts; the grader must not."""
    want = torch.full((4, 3), 2.0)
    got = torch.tensor([2.0])
    assert torch.allclose(got, want)  # the trap
    assert compare.structure(got, want) == ["output shape (1,), expected (4, 3)"]


def test_a_tensor_subclass_is_not_a_tensor():
    class Sneaky(torch.Tensor):
        pass

    problems = compare.structure(torch.zeros(2).as_subclass(Sneaky), torch.zeros(2))
    assert len(problems) == 1 and problems[0].endswith("<locals>.Sneaky, expected exactly a torch.Tensor")


def test_dtype_and_nested_tuples_are_checked():
    want = (torch.zeros(2), (torch.zeros(3), None))
    got = (torch.zeros(2, dtype=torch.float64), (torch.zeros(3), torch.zeros(1)))
    assert compare.structure(got, want) == ["output[0] dtype torch.float64, expected torch.float32",
                                            "output[1][1] should be None, got a Tensor"]
    assert compare.structure((torch.zeros(2),), want) == ["output has 1 elements, expected 2"]


def test_values_within_tolerance_pass_and_the_worst_error_is_named():
    want = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert compare.tensor_values(want + 1e-9, want, rtol=1e-7, atol=1e-9) is None
    got = want.clone()
    got[1, 0] += 0.5
    message = compare.tensor_values(got, want, rtol=1e-7, atol=1e-9)
    assert "max abs error 0.5 at [1, 0]" in message and "got 3.5, expected 3" in message
    assert "1 of 4 elements off" in message


def test_nan_and_overflow_are_named():
    want = torch.tensor([1.0, 2.0, 3.0])
    got = torch.tensor([1.0, float("nan"), 3.0])
    assert "is NaN at [1] where torch's is 2" in compare.tensor_values(got, want, 1e-5, 1e-8)
    assert "overflows to inf at [2]" in compare.tensor_values(torch.tensor([1.0, 2.0, float("inf")]), want, 1e-5, 1e-8)
    # the same infinities as torch's are fine; NaN where torch has NaN too
    both = torch.tensor([float("-inf"), float("nan"), 1.0])
    assert compare.tensor_values(both.clone(), both, 1e-5, 1e-8) is None
    assert "-inf" in compare.tensor_values(torch.tensor([float("inf"), float("nan"), 1.0]), both, 1e-5, 1e-8)


def test_integer_outputs_compare_exactly():
    want = torch.tensor([1, 2, 3])
    assert compare.tensor_values(want.clone(), want, 1e-5, 1e-8) is None
    assert "differs at [2]: got 4, expected 3" in compare.tensor_values(torch.tensor([1, 2, 4]), want, 1e-5, 1e-8)
