"""Judge names -> classes (loaded lazily), the one preference list, the paper's judges, and judge construction.

Why one place: ``score``, ``audit``, the demo and analysis all build a judge from a name and its options with
:func:`build_judge`, and agree on what ``auto`` prefers (:data:`PREFERENCE`) and what ``paper`` means
(:data:`PAPER`). Adding a judge is one class plus one ``JUDGES.register`` line; its constructor's arguments
become ``--judge.OPTION`` flags on every command that takes ``--judge``.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from valueharms.errors import InputError
from valueharms.registry import Registry

JUDGES: Registry = Registry("judge")
JUDGES.register("perspective", "judges.perspective:PerspectiveJudge")
JUDGES.register("openai", "judges.openai_judge:OpenAIJudge")
JUDGES.register("gpt-4o", "judges.openai_judge:OpenAIJudge")
JUDGES.register("regard", "judges.regard:RegardJudge")
JUDGES.register("detoxify", "judges.detoxify_judge:DetoxifyJudge")
JUDGES.register("offline", "judges.offline:OfflineJudge")
JUDGES.register("auto", "judges.select:AutoJudge")
JUDGES.register("paper", "judges.select:PaperJudge")

#: Most preferred first. ``score --judge auto`` takes, per measure, the first that covers it and runs locally
#: (no key, network or download); analysis's ``auto`` takes the first that has scores for the measure.
PREFERENCE: tuple[str, ...] = ("openai", "perspective", "regard", "detoxify", "offline")

#: The study's judge per measure (``--judge paper``).
PAPER: dict[str, str] = {"toxicity": "perspective", "regard": "regard", "harmfulness": "openai", "flagged": "openai"}

#: Flags whose value names a judge (rewritten to a class path for the command-line parser).
JUDGE_FLAGS = ("--judge", "--judge.help")


def judge_class(name: str) -> type:
    """The class registered as ``name`` (one-line error with a did-you-mean hint when unknown)."""
    return JUDGES.get(name)


def class_path(name: str) -> str:
    """``module.Class`` of a registered judge: what jsonargparse reads after ``--judge``."""
    cls = judge_class(name)
    return f"{cls.__module__}.{cls.__qualname__}"


def build_judge(name: str, options: dict[str, Any] | None = None) -> Any:
    """THE way to make a judge from a registry name and its options (unknown options: one-line error)."""
    cls = judge_class(name)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = ", ".join(p for p in params if p != "self") or "none"
            raise InputError(None, None, "judge", f"judge {name!r} has no option {unknown[0]!r} (options: {known})")
    return cls(**options)


def as_judge(judge: Any, options: dict[str, Any] | None = None) -> Any:
    """A judge object from a judge object (kept) or a registry name (built with ``options``)."""
    if isinstance(judge, str):
        return build_judge(judge, options)
    if not hasattr(judge, "score"):
        raise InputError(None, None, "judge", f"not a judge: {type(judge).__name__}")
    return judge


def runs_locally(name: str, options: dict[str, Any] | None = None) -> bool:
    """Whether a registered judge needs no key, network or download (its static ``runs_locally``)."""
    check = getattr(judge_class(name), "runs_locally", None)
    return bool(check(options)) if callable(check) else False


def expand_judge_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite ``--judge NAME`` (and ``--judge.help NAME``) to the judge's class path, so jsonargparse builds
    the judge from its own options (``--judge.model ...``). Dotted values are class paths already."""
    out, args = [], list(argv)
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in JUDGE_FLAGS and eq:
            out.append(f"{flag}={_expand(value)}")
        elif i > 0 and args[i - 1] in JUDGE_FLAGS:
            out.append(_expand(arg))
        else:
            out.append(arg)
    return out


def _expand(value: str) -> str:
    if "." in value or value.startswith(("{", "-")):
        return value
    return class_path(value)


#: Other names of one judge (score records written by ``gpt-4o`` belong to ``openai``).
JUDGE_ALIASES: dict[str, str] = {"gpt-4o": "openai"}


def canonical_judge(name: str) -> str:
    """One name per judge (``gpt-4o`` and ``openai`` are the same judge in score records)."""
    return JUDGE_ALIASES.get(name, name)
