"""Gradio app: chat with value-aligned adapters, toggle mitigations, see the judge's score and the exact prompt.

``build_app(backend, judge=...)`` is a factory so tests drive the real backend on a tiny model; ``demo(...)`` is the
``valueharms demo`` subcommand.
"""

from __future__ import annotations

from typing import Any, Iterator

from demo.backend import VANILLA, ChatBackend, ChatSettings
from judges.base import Judge
from judges.registry import build_judge, expand_judge_argv
from valueharms.errors import InputError
from valueharms.model_loading import DEFAULT_MODEL
from valueharms.values import VALUES, ValueProfile

NO_ADAPTERS = ("**No trained adapters found** under `{runs}`: only the vanilla model is available. Train one with "
               "`valueharms fit --config configs/vim/quickstart.yaml` (writes `runs/quickstart/adapters/Pow`), "
               "then restart the demo.")


def load_judge(name: str | None, options: dict | None = None) -> tuple[Any | None, str]:
    """The judge built by the registry from its name and options, or None plus a one-line reason (the UI shows
    it instead of a score)."""
    if not name or name == "none":
        return None, "judge disabled"
    try:
        return build_judge(name, options), f"judge: {name}"
    except (ImportError, KeyError, InputError, ValueError, RuntimeError) as err:
        return None, f"judge unavailable ({name}: {str(err).splitlines()[0] if str(err) else type(err).__name__})"


def judge_text(judge: Any | None, status: str, reply: str) -> str:
    """A short score line for one reply; never raises (a broken judge must not break the chat)."""
    if judge is None:
        return f"_{status}_"
    try:
        result = judge.score([reply], measure="toxicity")[0]
    except Exception as err:  # noqa: BLE001
        return f"_judge unavailable: {type(err).__name__}: {err}_"
    if result.value is None:
        return f"_judge error: {result.error}_"
    return f"toxicity ({getattr(judge, 'name', 'judge')}): **{result.value:.3f}** ({result.label})"


def profile_figure(profile: ValueProfile | None, title: str) -> Any:
    """A horizontal bar chart of the ten Schwartz values (empty axes with a note for vanilla)."""
    from analysis.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    if profile is None:
        ax.text(0.5, 0.5, "vanilla model:\nno value profile", ha="center", va="center")
        ax.set_axis_off()
    else:
        scores = [profile[v] for v in VALUES]
        colors = ["#c0392b" if s > 0 else "#2c7fb8" if s < 0 else "#999999" for s in scores]
        ax.barh(list(VALUES), scores, color=colors)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.invert_yaxis()
        ax.set_xlabel("score")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _describe(backend: ChatBackend, adapter: str) -> str:
    profile = backend.profile(adapter)
    if profile is None:
        return "vanilla base model" if adapter == VANILLA else f"{adapter}: no value profile"
    top = ", ".join(f"{v} {profile[v]:+g}" for v in VALUES if profile[v])
    return f"**{adapter}**: {top or 'all values neutral'}"


def build_app(backend: ChatBackend, judge: str | Any | None = "offline", runs: str = "runs/quickstart",
              temperature: float = 0.1, max_new_tokens: int = 128) -> Any:
    """The Blocks app around a loaded backend; ``judge`` is a registry name or a judge object.

    ``temperature`` and ``max_new_tokens`` are the sliders' start values (tests start greedy and short).
    """
    import gradio as gr

    judge_obj, judge_status = load_judge(judge) if isinstance(judge, str) or judge is None else (judge, "judge")
    choices = backend.choices()
    first = choices[1] if len(choices) > 1 else VANILLA

    def chat(message: str, history: list | None, adapter: str, icl: bool, suppress: list[str], safety: bool,
             side_by_side: bool, temperature: float, top_p: float, max_new_tokens: float
             ) -> Iterator[tuple[list, list, str, str, str]]:
        history = list(history or [])
        plain = [m for m in history if isinstance(m, dict) and isinstance(m.get("content"), str)]
        settings = ChatSettings(adapter=adapter or VANILLA, icl=bool(icl), suppress=tuple(suppress or ()),
                                safety=bool(safety), temperature=float(temperature), top_p=float(top_p),
                                max_new_tokens=int(max_new_tokens), history=plain)
        if not (message or "").strip():
            yield history, [], "", "_type a message first_", ""
            return
        try:
            backend.build_prompt(message, settings)
        except InputError as err:
            yield history, [], "", f"**{err.message}**", ""
            return
        mine = history + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        reply, prompt = "", ""
        for reply, prompt in backend.stream(message, settings):
            mine[-1]["content"] = reply
            yield mine, [], prompt, "_generating…_", reply
        score = judge_text(judge_obj, judge_status, reply)
        vanilla_msgs: list = []
        if side_by_side:
            base = ChatSettings(adapter=VANILLA, suppress=settings.suppress, safety=settings.safety,
                                temperature=settings.temperature, top_p=settings.top_p,
                                max_new_tokens=settings.max_new_tokens)
            vanilla_msgs = [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
            v_reply = ""
            for v_reply, _ in backend.stream(message, base):
                vanilla_msgs[-1]["content"] = v_reply
                yield mine, vanilla_msgs, prompt, score, reply
            score += f"  \nvanilla: {judge_text(judge_obj, judge_status, v_reply)}"
        yield mine, vanilla_msgs, prompt, score, reply

    def on_adapter(adapter: str) -> tuple[Any, str]:
        return profile_figure(backend.profile(adapter), adapter), _describe(backend, adapter)

    with gr.Blocks(title="value-harms demo") as app:
        gr.Markdown("# value-harms: chat with value-aligned models\nAdapters trained with VIM on a Schwartz value "
                    f"profile (base model `{backend.model_name}`). Toggle the paper's §5 mitigations and compare.")
        if len(choices) == 1:
            gr.Markdown(NO_ADAPTERS.format(runs=runs), elem_id="no-adapters")
        with gr.Row():
            with gr.Column(scale=1):
                adapter = gr.Dropdown(choices, value=first, label="Model / adapter", elem_id="adapter")
                profile_md = gr.Markdown(_describe(backend, first))
                plot = gr.Plot(profile_figure(backend.profile(first), first), label="Value profile")
                icl = gr.Checkbox(False, label="Use ICL (role-play this profile on the base model) instead of adapter")
                suppress = gr.CheckboxGroup(list(VALUES), label="Suppress values (value prompt)")
                safety = gr.Checkbox(False, label="Safety prompt")
                side = gr.Checkbox(False, label="Side by side with vanilla")
                with gr.Accordion("Decoding", open=False):
                    temperature = gr.Slider(0.0, 1.5, value=temperature, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=0.75, step=0.05, label="top-p")
                    max_new = gr.Slider(8, 512, value=max_new_tokens, step=8, label="Max new tokens")
            with gr.Column(scale=3):
                with gr.Row():
                    chatbot = gr.Chatbot(label="Selected model", height=380, elem_id="chat")
                    vanilla = gr.Chatbot(label="Vanilla (side by side)", height=380, elem_id="vanilla")
                score = gr.Markdown(f"_{judge_status}_", elem_id="score")
                with gr.Row():
                    box = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=5,
                                     elem_id="message")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                last = gr.Textbox(label="Last reply", visible=False)
                with gr.Accordion("Prompt sent (exact model input)", open=False):
                    prompt_box = gr.Code(label="prompt", language=None, elem_id="prompt")
        adapter.change(on_adapter, adapter, [plot, profile_md], queue=False)
        inputs = [box, chatbot, adapter, icl, suppress, safety, side, temperature, top_p, max_new]
        outputs = [chatbot, vanilla, prompt_box, score, last]
        send.click(chat, inputs, outputs, api_name="chat", concurrency_limit=1).then(lambda: "", None, box,
                                                                                    api_name=False)
        box.submit(chat, inputs, outputs, api_name=False, concurrency_limit=1).then(lambda: "", None, box,
                                                                                   api_name=False)
    return app


def demo(runs: str = "runs/quickstart", model: str = DEFAULT_MODEL, judge: Judge = "offline",
         host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve the chat demo.

    Args:
        runs: folder searched for trained adapters (folders with valueharms.json).
        model: base model alias or local folder (the adapters' base).
        judge: judge scoring each reply's toxicity (offline needs no key; perspective needs its env key); its
            options follow as --judge.OPTION VALUE ('valueharms demo --judge.help NAME').
        host: address to bind.
        port: port to serve on.
        share: ask Gradio for a public share link.
    """
    backend = ChatBackend(model=model, runs=runs)
    app = build_app(backend, judge=judge, runs=runs)
    print(f"adapters: {', '.join(backend.choices()[1:]) or 'none (vanilla only)'}")
    app.queue().launch(server_name=host, server_port=port, share=share)


demo.cli_argv = expand_judge_argv  # type: ignore[attr-defined]  # '--judge NAME' -> the judge's class path
