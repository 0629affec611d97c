"""What the demo shows besides the chat: the judge's scores for a reply and the adapter's value profile.

Kept apart from the app so the wording (judge limits, 1-6 scale) is tested without a browser.
"""

from __future__ import annotations

from typing import Any, Mapping

from valueharms.errors import InputError
from valueharms.values import SCALE_MAX, SCALE_MIN, VALUES, ValueProfile

#: Measures that fit a chat reply, in display order: toxicity of the text; harmfulness (1-5) and flagged judge the
#: reply as an answer to the user's message (a refusal scores lowest).
CHAT_MEASURES = ("toxicity", "harmfulness", "flagged")
#: What a reader must know about a judge's numbers (shown once under the scores).
JUDGE_NOTES = {
    "offline": "offline judge: a profanity classifier (linear SVM) for toxicity and refusal/compliance heuristics for "
               "harmfulness; a smoke test, not the paper's judges",
}


def load_judge(name: str | None, options: Mapping[str, Any] | None = None) -> tuple[Any | None, str]:
    """The judge object, or None plus a one-line reason (the UI shows it instead of a score)."""
    if not name or name == "none":
        return None, "judge disabled"
    try:
        from judges.registry import build_judge

        return build_judge(name, dict(options or {})), f"judge: {name}"
    except (ImportError, KeyError, InputError, ValueError, RuntimeError, TypeError) as err:
        return None, f"judge unavailable ({name}: {str(err).splitlines()[0] if str(err) else type(err).__name__})"


def _format(measure: str, value: float, label: str | None) -> str:
    if measure == "toxicity":
        return f"toxicity **{value:.3f}** ({label or 'n/a'})"
    if measure == "harmfulness":
        return f"harmfulness **{value:g}**/5" + (" (refusal)" if value <= 1 else "")
    return f"flagged: **{'yes' if value >= 0.5 else 'no'}**"


def judge_text(judge: Any | None, status: str, reply: str, message: str = "", note: bool = True) -> str:
    """One score line for a reply, every chat measure the judge offers; never raises (a broken judge must not
    break the chat)."""
    if judge is None:
        return f"_{status}_"
    parts = []
    for measure in (m for m in CHAT_MEASURES if m in getattr(judge, "measures", ())):
        try:
            result = judge.score([reply], measure=measure, contexts=[{"prompt": message}])[0]
        except Exception as err:  # noqa: BLE001
            parts.append(f"_{measure}: judge failed ({type(err).__name__}: {err})_")
            continue
        parts.append(_format(measure, result.value, result.label) if result.value is not None
                     else f"_{measure}: judge error ({result.error})_")
    if not parts:
        return f"_{getattr(judge, 'name', 'judge')} scores none of {', '.join(CHAT_MEASURES)}_"
    name = getattr(judge, "name", "judge")
    tail = f"  \n_{JUDGE_NOTES.get(name, f'judge: {name}')}_" if note else ""
    return " · ".join(parts) + tail


def describe_profile(adapter: str, profile: ValueProfile | None) -> str:
    """The profile in words on its own scale, most important value first (``Power 6/6 · …``)."""
    if profile is None:
        return "vanilla base model: no value profile" if adapter == "vanilla" else f"{adapter}: no value profile"
    ranked = sorted(VALUES, key=lambda v: -profile[v])
    return f"**{adapter}** (importance {SCALE_MIN:g}-{SCALE_MAX:g}): " + " · ".join(
        f"{v} {profile[v]:g}" for v in ranked)


def profile_figure(profile: ValueProfile | None, title: str) -> Any:
    """Horizontal bars of the ten values on the 1-6 importance scale, coloured from low (blue) to high (orange)."""
    from analysis.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.3))
    if profile is None:
        ax.text(0.5, 0.5, "vanilla model:\nno value profile", ha="center", va="center")
        ax.set_axis_off()
    else:
        scores = [profile[v] for v in VALUES]
        cmap = plt.get_cmap("RdYlBu_r")
        colors = [cmap(0.15 + 0.7 * (s - SCALE_MIN) / (SCALE_MAX - SCALE_MIN)) for s in scores]
        ax.barh(list(VALUES), scores, color=colors, edgecolor="#444444", linewidth=0.4)
        for y, s in enumerate(scores):
            ax.text(s + 0.08, y, f"{s:g}", va="center", fontsize=8)
        ax.set_xlim(0, SCALE_MAX + 0.7)
        ax.set_xticks(range(int(SCALE_MIN), int(SCALE_MAX) + 1))
        ax.invert_yaxis()
        ax.set_xlabel("importance (1 = not at all, 6 = very)")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
