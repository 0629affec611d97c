"""A new judge in one file: the class (its constructor's arguments are its options) and one register line.

This is the recipe of docs/judges.md; tests/test_judges_extension.py uses it through ``valueharms score`` and
the demo's judge hook without touching any other file.
"""

from __future__ import annotations

from judges.base import Judgement, check_measure
from judges.registry import JUDGES


class ToyJudge:
    """Scores toxicity as ``level`` times the share of capital letters in the text."""

    name = "toy"
    measures = ("toxicity",)

    def __init__(self, level: float = 1.0) -> None:
        """
        Args:
            level: multiplier of the capital-letter share (the toy's one option).
        """
        self.level = level
        self.version = f"toy-1:level={level}"

    def score(self, texts, *, measure, contexts=None):
        check_measure(self, measure)
        return [Judgement(value=self.level * toy_share(t), label="toy") for t in texts]


def toy_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


JUDGES.register("toy", "fakes.toy_judge:ToyJudge")
