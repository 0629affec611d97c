"""The Gradio demo against the real backend on a tiny random Llama with real peft adapters."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from valueharms.adapters import write_metadata
from valueharms.prompts import DEFAULT_SAFETY_PROMPT, suppression_text
from valueharms.values import ValueProfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_adapter(model_dir: Path, out: Path, name: str, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from valueharms.model_loading import load_model

    torch.manual_seed(seed)
    model = get_peft_model(load_model(str(model_dir)),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():  # make the adapter clearly change the output of a tiny random model
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.mul_(20.0)
    model.save_pretrained(out)
    write_metadata(out, kind="vim", name=name, base_model=str(model_dir), profile=ValueProfile.extreme(name),
                   complete=True)
    return out


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_adapter(tiny_model_dir, root / "adapters" / "Pow", "Pow", 1)
    make_adapter(tiny_model_dir, root / "adapters" / "Ben", "Ben", 2)
    return root


@pytest.fixture(scope="module")
def backend(tiny_model_dir, runs):
    from demo.backend import ChatBackend

    return ChatBackend(model=str(tiny_model_dir), runs=runs)


def launch(app):
    """Launch in a thread, waiting patiently for the server on a slow machine.

    Gradio's own readiness probe (``networking.url_ok``) gives up after ~15 s of 3-s HEAD requests and then
    demands a share link; on a loaded CI runner the first page render can take longer than that.
    """
    import time

    import gradio.networking as networking
    import httpx

    def patient_url_ok(url: str) -> bool:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=60).status_code in (200, 302, 307):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(networking, "url_ok", patient_url_ok)
        app.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return app


@pytest.fixture(scope="module")
def served(backend):
    """One app for the module: greedy and short by default, so API and browser replies are reproducible."""
    from demo.app import build_app

    app = launch(build_app(backend, judge="offline", runs="unused", temperature=0.0, max_new_tokens=16))
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served.local_url, verbose=False)


def greedy(backend, **kw):
    from demo.backend import ChatSettings

    return ChatSettings(**{"temperature": 0.0, "max_new_tokens": 12, **kw})


def test_backend_loads_adapters_and_they_differ(backend):
    assert backend.choices() == ["vanilla", "Ben", "Pow"]
    outs = {a: backend.generate("hello there", greedy(backend, adapter=a))[0] for a in backend.choices()}
    assert all(outs.values())
    assert len(set(outs.values())) == 3, outs  # each adapter (and vanilla) really is a different model
    # ICL runs on the base model: with the same prompt it must equal vanilla's behaviour, not the adapter's.
    icl_prompt = backend.build_prompt("hi", greedy(backend, adapter="Pow", icl=True))
    reply_icl, _ = backend.generate("hi", greedy(backend, adapter="Pow", icl=True))
    inputs = backend.tokenizer(icl_prompt, return_tensors="pt", add_special_tokens=False)
    from demo.backend import ChatSettings

    with backend.model.disable_adapter():
        ids = backend.model.generate(**inputs, max_new_tokens=12, do_sample=False,
                                     pad_token_id=backend.tokenizer.pad_token_id)
    expected = backend.tokenizer.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reply_icl == expected
    assert ChatSettings().temperature == 0.1 and ChatSettings().top_p == 0.75


def _predict(client, **kw):
    args = dict(message="tell me about power", history=[], adapter="Pow", icl=False, suppress=[], safety=False,
                side_by_side=False, temperature=0.0, top_p=0.75, max_new_tokens=12)
    args.update(kw)
    return client.predict(*args.values(), api_name="/chat")


def test_api_reply_matches_backend_and_toggles_shape_prompt(client, backend):
    chat, vanilla, prompt, score, reply = _predict(client)
    expected, expected_prompt = backend.generate("tell me about power", greedy(backend, adapter="Pow"))
    assert reply and reply == expected
    assert prompt.rstrip() == expected_prompt.rstrip()  # a Gradio textbox drops trailing whitespace
    assert "toxicity" in score  # offline judge scored it
    assert vanilla in ([], None)

    _, _, prompt, _, _ = _predict(client, suppress=["Power"], safety=True)
    assert prompt.count(suppression_text(["Power"])) == 1
    assert prompt.count(DEFAULT_SAFETY_PROMPT) == 1
    _, _, plain, _, _ = _predict(client)
    assert suppression_text(["Power"]) not in plain and DEFAULT_SAFETY_PROMPT not in plain

    _, _, icl, _, icl_reply = _predict(client, icl=True)
    profile = ValueProfile.extreme("Pow")
    assert "tell me about power" in icl
    for value in ("Power", "Benevolence"):
        assert f"{value}" in icl
    assert str(int(profile["Power"])) in icl
    assert icl_reply == backend.generate("tell me about power", greedy(backend, adapter="Pow", icl=True))[0]


def test_side_by_side_fills_both(client, backend):
    chat, vanilla, _, score, reply = _predict(client, side_by_side=True)
    v_expected, _ = backend.generate("tell me about power", greedy(backend, adapter="vanilla"))
    text = vanilla[-1]["content"]
    text = text if isinstance(text, str) else "".join(part.get("text", "") for part in text)
    assert text == v_expected
    assert "vanilla:" in score


def test_no_adapters_still_builds(tiny_model_dir, tmp_path):
    from demo.app import NO_ADAPTERS, build_app
    from demo.backend import ChatBackend

    backend = ChatBackend(model=str(tiny_model_dir), runs=tmp_path / "empty")
    assert backend.choices() == ["vanilla"]
    app = build_app(backend, judge="offline", runs=str(tmp_path / "empty"))
    config = str(app.config)
    assert "No trained adapters found" in config and "valueharms fit" in NO_ADAPTERS
    reply, _ = backend.generate("hi", greedy(backend))
    assert reply


def test_judge_unavailable_and_bad_model(tmp_path):
    from demo.app import judge_text, load_judge
    from valueharms.errors import InputError

    judge, status = load_judge("no-such-judge")
    assert judge is None and "judge unavailable" in status
    assert "judge unavailable" in judge_text(judge, status, "hello")
    from demo.backend import ChatBackend

    with pytest.raises(InputError) as err:
        ChatBackend(model=str(tmp_path / "missing-model"))
    assert "\n" not in str(err.value)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def test_browser_chat_round_trip(served, backend, tmp_path):
    """The page in a real headless Chromium (Debian's, driven by Playwright): type, send, see the reply."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium missing: run `make browser` (apt-get install chromium) for the browser test")
    from playwright.sync_api import sync_playwright

    first = backend.choices()[1]  # the adapter the dropdown starts on
    expected, _ = backend.generate("hello browser", greedy(backend, adapter=first, max_new_tokens=16))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(180_000)  # a loaded CI runner renders slowly; failures still surface
            page.goto(served.local_url)
            page.locator("#message textarea").fill("hello browser")
            page.locator("#send").click()
            page.locator("#score").get_by_text("toxicity").wait_for()
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            body = page.locator("#chat").inner_text()
        finally:
            browser.close()
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert "hello browser" in body
    snippet = expected.strip().split("\n")[0][:20].strip()
    assert snippet and snippet in body, (snippet, body[:500])
