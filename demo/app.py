"""Gradio app: chat with value-aligned adapters, toggle mitigations, see the judge's scores and the exact prompt.

``build_app(backend, judge=...)`` is a factory so tests drive the real backend on a tiny model; ``demo(...)`` is the
``valueharms demo RUN`` subcommand. The chat is multi-turn: the history Gradio hands back (content strings or
content-part lists) goes to the backend, which builds the whole conversation with the project's prompt builder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from demo.backend import VANILLA, ChatBackend, ChatSettings
from demo.view import describe_profile, judge_text, load_judge, profile_figure
from judges.base import Judge
from judges.registry import expand_judge_argv
from valueharms.errors import InputError
from valueharms.model_loading import DEFAULT_MODEL
from valueharms.prompts import chat_history
from valueharms.values import VALUES

NO_ADAPTERS = ("**No trained adapters found** under `{runs}`: only the vanilla model is available. Train one with "
               "`valueharms quickstart` (writes `runs/quickstart/adapters/`), then restart the demo with "
               "`valueharms demo runs/quickstart`.")


def _turn(history: list[dict[str, str]], message: str, reply: str) -> list[dict[str, str]]:
    return [*history, {"role": "user", "content": message}, {"role": "assistant", "content": reply}]


def chat_handler(backend: ChatBackend, judge_obj: Any | None, judge_status: str) -> Callable[..., Iterator]:
    """The ``/chat`` event: stream the selected model's reply (then vanilla's, side by side), then the scores.

    Histories arrive as Gradio hands them (content strings or content-part lists) and leave as plain messages.
    """

    def chat(message: str, history: list | None, adapter: str, icl: bool, suppress: list[str], safety: bool,
             side_by_side: bool, temperature: float, top_p: float, max_new_tokens: float,
             system_prompt: str = "", vanilla_history: list | None = None
             ) -> Iterator[tuple[list, list, str, str, str]]:
        try:
            past, v_past = chat_history(history), chat_history(vanilla_history)
        except InputError as err:
            yield list(history or []), list(vanilla_history or []), "", f"**{err.one_line()}**", ""
            return
        settings = ChatSettings(adapter=adapter or VANILLA, icl=bool(icl), suppress=tuple(suppress or ()),
                                safety=bool(safety), system_prompt=system_prompt or "",
                                temperature=float(temperature), top_p=float(top_p),
                                max_new_tokens=int(max_new_tokens), history=past)
        if not (message or "").strip():
            yield past, v_past, "", "_type a message first_", ""
            return
        try:
            backend.build_prompt(message, settings)
        except InputError as err:
            yield past, v_past, "", f"**{err.message}**", ""
            return
        reply, prompt = "", ""
        for reply, prompt in backend.stream(message, settings):
            yield _turn(past, message, reply), v_past, prompt, "_generating…_", reply
        score = f"**{settings.adapter}**{' (ICL)' if settings.icl else ''}: " + judge_text(
            judge_obj, judge_status, reply, message)
        mine, vanilla = _turn(past, message, reply), v_past
        if side_by_side:
            base = dataclasses.replace(settings, adapter=VANILLA, icl=False, history=v_past)
            v_reply = ""
            for v_reply, _ in backend.stream(message, base):
                yield mine, _turn(v_past, message, v_reply), prompt, score, reply
            vanilla = _turn(v_past, message, v_reply)
            score += "  \n**vanilla**: " + judge_text(judge_obj, judge_status, v_reply, message, note=False)
        yield mine, vanilla, prompt, score, reply

    return chat


def api_chat(chat: Callable[..., Iterator], adapter: str, temperature: float, max_new_tokens: int) -> Callable:
    """The ``/chat`` API: the page's chat with typed, defaulted parameters and plain JSON histories.

    Why a separate endpoint: a Chatbot input validates its payload as Gradio's content-part messages, so plain
    ``{"role", "content": str}`` history from a client would be refused before the chat sees it.
    """

    def chat_api(message: str, history: list[dict] | None = None, adapter: str = adapter, icl: bool = False,
                 suppress: list[str] | None = None, safety: bool = False, side_by_side: bool = False,
                 temperature: float = temperature, top_p: float = 0.75, max_new_tokens: int = max_new_tokens,
                 system_prompt: str = "", vanilla_history: list[dict] | None = None
                 ) -> tuple[list[dict], list[dict], str, str, str]:
        """Send ``message`` after ``history``; returns (history, vanilla history, exact prompt, scores, reply)."""
        result: tuple = ([], [], "", "", "")
        for result in chat(message, history, adapter, icl, suppress, safety, side_by_side, temperature, top_p,
                           max_new_tokens, system_prompt, vanilla_history):
            pass
        return result

    return chat_api


def build_app(backend: ChatBackend, judge: str | Any | None = "offline", runs: str = "runs/quickstart",
              temperature: float = 0.1, max_new_tokens: int = 128,
              judge_options: Mapping[str, Any] | None = None) -> Any:
    """The Blocks app around a loaded backend; ``judge`` is a registry name (built with ``judge_options``) or a judge.

    ``temperature`` and ``max_new_tokens`` are the sliders' start values (tests start greedy and short).
    """
    import gradio as gr

    if isinstance(judge, str) or judge is None:
        judge_obj, judge_status = load_judge(judge, judge_options)
    else:
        judge_obj, judge_status = judge, f"judge: {getattr(judge, 'name', 'judge')}"
    choices = backend.choices()
    first = choices[1] if len(choices) > 1 else VANILLA

    chat = chat_handler(backend, judge_obj, judge_status)

    def on_adapter(adapter: str) -> tuple[Any, str]:
        return profile_figure(backend.profile(adapter), adapter), describe_profile(adapter, backend.profile(adapter))

    with gr.Blocks(title="value-harms demo") as app:
        gr.Markdown("# value-harms: chat with value-aligned models\nAdapters trained with VIM on a Schwartz value "
                    f"profile (base model `{backend.model_name}`). Toggle the paper's §5 mitigations and compare.")
        if len(choices) == 1:
            gr.Markdown(NO_ADAPTERS.format(runs=runs), elem_id="no-adapters")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                adapter = gr.Dropdown(choices, value=first, label="Model / adapter", elem_id="adapter")
                profile_md = gr.Markdown(describe_profile(first, backend.profile(first)), elem_id="profile")
                plot = gr.Plot(profile_figure(backend.profile(first), first), label="Value profile (1-6)")
                icl = gr.Checkbox(False, label="Use ICL (role-play this profile on the base model) instead of adapter")
                suppress = gr.CheckboxGroup(list(VALUES), label="Suppress values (value prompt)")
                safety = gr.Checkbox(False, label="Safety prompt")
                side = gr.Checkbox(False, label="Side by side with vanilla", elem_id="side")
                with gr.Accordion("Decoding and system prompt", open=False):
                    temperature = gr.Slider(0.0, 1.5, value=temperature, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=0.75, step=0.05, label="top-p")
                    max_new = gr.Slider(8, 512, value=max_new_tokens, step=8, label="Max new tokens")
                    system = gr.Textbox("", lines=2, label="System prompt (the mitigation text follows it)",
                                        elem_id="system")
            with gr.Column(scale=3):
                with gr.Row():
                    chatbot = gr.Chatbot(label="Selected model", height=380, elem_id="chat",
                                         buttons=["copy", "copy_all"])
                    vanilla = gr.Chatbot(label="Vanilla (side by side)", height=380, elem_id="vanilla",
                                         buttons=["copy", "copy_all"], visible=False)
                score = gr.Markdown(f"_{judge_status}_", elem_id="score")
                with gr.Row():
                    box = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=5,
                                     elem_id="message")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    clear = gr.Button("New chat", scale=1, elem_id="clear")
                last = gr.Textbox(label="Last reply", visible=False)
                with gr.Accordion("Prompt sent (exact model input, whole conversation)", open=False,
                                  elem_id="prompt-accordion"):
                    prompt_box = gr.Textbox(label="prompt", lines=8, max_lines=40, interactive=False,
                                            buttons=["copy"], elem_id="prompt")
        adapter.change(on_adapter, adapter, [plot, profile_md], queue=False)
        side.change(lambda on: gr.update(visible=bool(on)), side, vanilla, queue=False, api_name=False)
        clear.click(lambda: ([], [], "", ""), None, [chatbot, vanilla, prompt_box, box], queue=False, api_name=False)
        inputs = [box, chatbot, adapter, icl, suppress, safety, side, temperature, top_p, max_new, system, vanilla]
        outputs = [chatbot, vanilla, prompt_box, score, last]
        for event in (send.click, box.submit):  # the page's events; the API is /chat below
            event(chat, inputs, outputs, api_name=False, concurrency_limit=1, concurrency_id="model").then(
                lambda: "", None, box, api_name=False)
        gr.api(api_chat(chat, first, temperature.value, int(max_new.value)), api_name="chat", concurrency_limit=1,
               concurrency_id="model")
    return app


def demo(run: str, adapters: list[str] | None = None, model: str = DEFAULT_MODEL, judge: Judge = "offline",
         host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve the chat demo.

    Args:
        run: study folder searched for trained adapters (folders with valueharms.json), e.g. runs/quickstart.
        adapters: more adapters: folders or Hugging Face hub ids.
        model: base model alias, local folder or hub id (the adapters' base).
        judge: judge scoring each reply (offline needs no key; openai/perspective need their env keys); its
            options follow as --judge.OPTION VALUE ('valueharms demo --judge.help NAME').
        host: address to bind.
        port: port to serve on.
        share: ask Gradio for a public share link.
    """
    if not Path(run).is_dir():  # a typo would otherwise load the model and serve a vanilla-only demo
        raise InputError(run, None, "run", "no such folder (a study folder whose adapters to serve, e.g. "
                         "runs/quickstart after 'valueharms quickstart'; an empty folder serves the base model only)")
    backend = ChatBackend(model=model, runs=run, adapters=adapters)
    app = build_app(backend, judge=judge, runs=run)
    print(f"adapters: {', '.join(backend.choices()[1:]) or 'none (vanilla only)'}")
    app.queue().launch(server_name=host, server_port=port, share=share, quiet=True, prevent_thread_lock=True)
    print(f"demo running on {app.local_url}" + (f"  public link: {app.share_url}" if share and app.share_url else ""))
    if not share:
        print("for a public link, rerun with --share")
    try:
        app.block_thread()
    finally:
        app.close()


demo.cli_argv = expand_judge_argv  # type: ignore[attr-defined]  # '--judge NAME' -> the judge's class path
