"""Judge names -> factories, resolved lazily so openai/detoxify/transformers load only when used."""

from __future__ import annotations

from valueharms.registry import Registry

JUDGES: Registry = Registry("judge")
JUDGES.register("perspective", "judges.perspective:PerspectiveJudge")
JUDGES.register("openai", "judges.openai_judge:OpenAIJudge")
JUDGES.register("gpt-4o", "judges.openai_judge:OpenAIJudge")
JUDGES.register("regard", "judges.regard:RegardJudge")
JUDGES.register("detoxify", "judges.detoxify_judge:DetoxifyJudge")
JUDGES.register("offline", "judges.offline:OfflineJudge")
JUDGES.register("auto", "judges.offline:AutoJudge")


def build_judge(name: str, **options):
    """Build a judge by registry name; ``options`` go to its constructor (unknown None values dropped)."""
    options = {k: v for k, v in options.items() if v is not None}
    return JUDGES.build(name, **options)


#: Analysis-side judge choice (defined here so score and analysis share one list). ``auto``: per measure, the
#: first of these with scores (analysis) or able to run locally (score). Aliases name the same judge.
JUDGE_PREFERENCE: tuple[str, ...] = ("openai", "perspective", "regard", "detoxify", "offline")
JUDGE_ALIASES: dict[str, str] = {"gpt-4o": "openai"}
#: ``paper``: the judge the paper used per measure.
PAPER_JUDGES: dict[str, str] = {"toxicity": "perspective", "regard": "regard", "harmfulness": "openai",
                                "flagged": "openai"}


def canonical_judge(name: str) -> str:
    """One name per judge (``gpt-4o`` and ``openai`` are the same judge in score records)."""
    return JUDGE_ALIASES.get(name, name)
