"""Reading a model's free-text answer to a binary or multiple-choice question.

Models rarely answer with the bare reference string, so :func:`parse_binary` and
:func:`parse_choice` accept the usual styles and return None when an answer is empty,
unreadable or ambiguous; :mod:`lake.eval` counts None as a wrong answer (and reports how many
answers were unparsed).

Binary (reference ``yes`` / ``no``), case-insensitive, on whole words:

1. the first word decides when it is ``yes`` or ``no``: ``"yes"``, ``"Yes."``, ``"YES, it is"``,
   ``"No, there is none"``;
2. else the answer is read when exactly one of the two words occurs in it: ``"I think yes"``;
3. else (neither word, or both after a first word that is neither) it is ambiguous: wrong.

Multiple choice (reference: the letter of an option; the options come from the row's parsed
``options`` column, letters ``A``, ``B``, ... in order), tried in this order:

1. a letter alone, in any case, with optional brackets and a trailing ``.``, ``)`` or ``:``:
   ``"B"``, ``"b"``, ``"(B)"``, ``"B."``, ``"B)"``, ``"[B]"``;
2. a capital letter label followed by text: ``"B. Forest"``, ``"(B) Forest"``, ``"B: forest"``;
   when the text is exactly the text of ANOTHER option, the answer contradicts itself and is
   ambiguous: wrong;
3. a capital letter after ``answer`` (``is`` / ``:`` optional): ``"The answer is B"``,
   ``"Answer: (C)"``;
4. the text of one option alone, compared case-insensitively after trimming spaces, quotes and
   a final ``.``: ``"Forest"``, ``"coniferous forest."``; no partial or fuzzy match;
5. anything else, a letter past the last option, or a text equal to two options: wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_WORD = re.compile(r"[a-z]+")
_ALONE = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.):]?$")
_LABEL = re.compile(r"^[(\[]?([A-Z])(?:[)\]]\s*[.:]?|[.):])\s*(.+)$", re.DOTALL)
_ANSWER_IS = re.compile(r"\banswer\s*(?:is\s*)?:?\s*[(\[]?([A-Z])\b(?![-'])", re.IGNORECASE)
_TRIM = " \t\r\n\"'`"


def parse_binary(text: str) -> bool | None:
    """The yes/no a free-text answer gives (see the module docstring for the rule).

    Args:
        text: The model's answer.

    Returns:
        True for yes, False for no, None when unreadable or ambiguous.

    Example:
        >>> parse_binary("Yes, there is."), parse_binary("no"), parse_binary("maybe")
        (True, False, None)
    """
    words = _WORD.findall(text.lower())
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return words[0] == "yes"
    found = {w for w in words if w in ("yes", "no")}
    if len(found) == 1:
        return found == {"yes"}
    return None


def _norm(text: str) -> str:
    return " ".join(text.strip(_TRIM).rstrip(".").strip(_TRIM).lower().split())


def _option_index(text: str, options: Sequence[str]) -> int | None:
    """The index of the one option whose text equals ``text`` (normalised), else None."""
    wanted = _norm(text)
    hits = [i for i, option in enumerate(options) if _norm(option) == wanted]
    return hits[0] if len(hits) == 1 and wanted else None


def _letter_index(letter: str, options: Sequence[str]) -> int | None:
    index = LETTERS.index(letter.upper())
    return index if index < len(options) else None


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """The 0-based option index a free-text answer chooses (see the module docstring).

    Args:
        text: The model's answer.
        options: The question's option texts in order (letters A, B, ... by position).

    Returns:
        The chosen option's index, or None when unreadable, out of range or ambiguous.

    Example:
        >>> opts = ["Spring", "Fall", "Summer", "Winter"]
        >>> [parse_choice(a, opts) for a in ("B", "(C)", "D. Winter", "The answer is A", "fall")]
        [1, 2, 3, 0, 1]
    """
    answer = text.strip(_TRIM)
    if not answer or not options:
        return None
    alone = _ALONE.match(answer)
    if alone:
        return _letter_index(alone.group(1), options)
    label = _LABEL.match(answer)
    if label:
        index = _letter_index(label.group(1), options)
        named = _option_index(label.group(2), options)
        if named is not None and named != index:
            return None  # "B. <text of option C>": the answer contradicts itself
        return index
    said = _ANSWER_IS.search(answer)
    if said and said.group(1).isupper():
        return _letter_index(said.group(1), options)
    return _option_index(answer, options)


__all__ = ["LETTERS", "parse_binary", "parse_choice"]
