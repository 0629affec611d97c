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
