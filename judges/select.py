"""Judges that pick another judge per measure: ``auto`` (best local one) and ``paper`` (the study's).

Why: one command scores a four-benchmark run with a different judge per measure, and every score record
names the judge that really scored it (each resolved judge writes its own ``scores/<judge>.jsonl``), so a
number is never attributed to ``auto`` or ``paper``. Judges are built on first use and shared between
measures (harmfulness and flagged use one openai judge), so ``--judge paper`` on a run without RTP needs no
Perspective key.
"""

from __future__ import annotations

import logging
from typing import Any

from judges.base import Judgement, check_measure
from judges.registry import PAPER, PREFERENCE, build_judge, judge_class, runs_locally
from valueharms.errors import InputError
from valueharms.measures import MEASURES

log = logging.getLogger(__name__)


class Selection:
    """Delegates each measure to a judge chosen by :meth:`choose`; built lazily, one instance per name."""

    name = "selection"
    measures: tuple[str, ...] = tuple(MEASURES)

    def __init__(self, options: dict[str, dict] | None = None) -> None:
        self.options = {k: dict(v or {}) for k, v in (options or {}).items()}
        self._built: dict[str, Any] = {}
        self._chosen: dict[str, str] = {}

    @property
    def version(self) -> str:
        return f"{self.name}:" + ",".join(f"{m}={n}" for m, n in sorted(self._chosen.items()))

    def choose(self, measure: str) -> str:
        raise NotImplementedError

    def resolve(self, measure: str) -> Any:
        """The judge that scores ``measure`` (built on first use; one-line error when it cannot be built)."""
        check_measure(self, measure)
        if measure not in self._chosen:
            name = self.choose(measure)
            if name not in self._built:
                self._built[name] = build_judge(name, self.options.get(name))
            log.warning("%s judge: %s is scored by %r", self.name, measure, name)
            self._chosen[measure] = name
        return self._built[self._chosen[measure]]

    def score(self, texts: list[str], *, measure: str, contexts: list[dict] | None = None) -> list[Judgement]:
        return self.resolve(measure).score(texts, measure=measure, contexts=contexts)


class AutoJudge(Selection):
    """Per measure, the most preferred judge (:data:`judges.registry.PREFERENCE`) that runs locally: regard
    and Detoxify when their weights are already on disk, else the offline judge. Never a paid API."""

    name = "auto"

    def __init__(self, regard: dict | None = None, detoxify: dict | None = None) -> None:
        """
        Args:
            regard: options for the regard judge when auto picks it, e.g. {model: /path/to/regardv3, device: cpu}.
            detoxify: options for the Detoxify judge when auto picks it, e.g. {model_type: unbiased}.
        """
        super().__init__({"regard": regard, "detoxify": detoxify})

    def choose(self, measure: str) -> str:
        for name in PREFERENCE:
            if measure in judge_class(name).measures and runs_locally(name, self.options.get(name)):
                return name
        raise InputError(None, None, "judge", f"no local judge scores {measure!r}")


class PaperJudge(Selection):
    """The study's judges (:data:`judges.registry.PAPER`): Perspective for toxicity, the regard classifier for
    regard, GPT-4o for harmfulness and flagged. Needs PERSPECTIVE_API_KEY / OPENAI_API_KEY for those measures."""

    name = "paper"

    def __init__(self, openai: dict | None = None, perspective: dict | None = None, regard: dict | None = None
                 ) -> None:
        """
        Args:
            openai: options for the GPT-4o judge, e.g. {base_url: http://host/v1, template: study}.
            perspective: options for the Perspective judge, e.g. {qps: 1}.
            regard: options for the regard judge, e.g. {model: /path/to/regardv3}.
        """
        super().__init__({"openai": openai, "perspective": perspective, "regard": regard})

    def choose(self, measure: str) -> str:
        return PAPER[measure]
