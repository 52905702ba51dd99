"""The tolerant reading of yes/no and multiple-choice answers, one case per documented style."""

from __future__ import annotations

import pytest

from lake.eval.answers import parse_binary, parse_choice

OPTIONS = ["broad-leaved forest", "Forest", "mixed forest", "Inland waters"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("Yes.", True),
        ("YES, it is", True),
        ("  yes  ", True),
        ("no", False),
        ("No.", False),
        ("No, there is none.", False),
        ("Yes, but there is no river", True),  # the first word decides
        ("I think yes", True),  # the only yes/no word
        ("The answer is no.", False),
        ("maybe", None),
        ("", None),
        ("It could be yes or no", None),  # both, first word neither: ambiguous
        ("yesterday", None),  # whole words only
        ("nope", None),
    ],
)
def test_binary_answers(text: str, expected: bool | None) -> None:
    assert parse_binary(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", 1),
        ("b", 1),
        ("(B)", 1),
        ("B.", 1),
        ("B)", 1),
        ("[C]", 2),
        (" D: ", 3),
        ("B. Forest", 1),
        ("(B) Forest", 1),
        ("B: forest", 1),
        ("B. Mixed forest", None),  # the letter of one option, the text of another
        ("C. something else", 2),  # text that names no option: the letter decides
        ("The answer is B", 1),
        ("Answer: (C)", 2),
        ("the answer is D.", 3),
        ("Forest", 1),
        ("forest.", 1),
        ('"inland waters"', 3),
        ("MIXED FOREST", 2),
        ("forests", None),  # no partial match
        ("a forest", None),
        ("E", None),  # past the last option
        ("E. Forest", None),
        ("", None),
        ("I do not know", None),
    ],
)
def test_choice_answers(text: str, expected: int | None) -> None:
    assert parse_choice(text, OPTIONS) == expected


def test_an_option_text_given_twice_is_ambiguous() -> None:
    assert parse_choice("forest", ["Forest", "forest", "water"]) is None
    assert parse_choice("B", ["Forest", "forest", "water"]) == 1


def test_no_options_reads_nothing() -> None:
    assert parse_choice("A", []) is None


def test_numeric_options_are_read_as_text() -> None:
    options = ["4", "1", "5", "6"]
    assert parse_choice("5", options) == 2
    assert parse_choice("C", options) == 2
    assert parse_choice("There are 5", options) is None
