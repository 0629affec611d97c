"""A judge that counts calls and can be told to crash (to simulate a killed scoring run)."""

from __future__ import annotations

from judges.base import Judgement


class CountingJudge:
    name = "counting"
    version = "1"
    measures = ("toxicity", "regard", "harmfulness", "flagged")
    calls: list[int] = []
    crash_after: int | None = None

    def score(self, texts, *, measure, contexts=None):
        if CountingJudge.crash_after is not None and len(CountingJudge.calls) >= CountingJudge.crash_after:
            raise KeyboardInterrupt("simulated kill")
        CountingJudge.calls.append(len(texts))
        return [Judgement(value=min(1.0, len(t) / 100), label="negative" if measure == "regard" else None,
                          labels={}) for t in texts]
