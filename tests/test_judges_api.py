"""Perspective and OpenAI judges against fake servers that inject 429/500/timeouts/malformed bodies/Retry-After,
a closed port (fail fast), and the study's rubrics rendered byte for byte."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from fakes.servers import openai_server, perspective_server, toxicity_of
from judges.cache import JudgementCache, score_cached
from valueharms.errors import InputError

KEY = "sk-SECRET-test-key-0123456789"


@pytest.fixture()
def keys(monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


@pytest.fixture()
def study_prompts(study_data):
    folder = study_data / "original" / "prompts"
    if not (folder / "hexphi_judge_template.txt").is_file():
        pytest.skip(f"the study's rubric files are absent ({folder}); 'valueharms data' fetches them")
    return folder


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the with block ends: connections are refused


def _perspective(url, **kw):
    from judges.perspective import PerspectiveJudge

    opts = dict(base_url=url + "/v1alpha1/comments:analyze", qps=1000, timeout=2.0, base_delay=0.01,
                max_retry_time=5)
    return PerspectiveJudge(**{**opts, **kw})


def _openai(url, **kw):
    from judges.openai_judge import OpenAIJudge

    return OpenAIJudge(**{**dict(base_url=url + "/v1", timeout=2.0, concurrency=4, rps=1000, template="ours"), **kw})


def test_perspective_retries_every_failure_kind_and_scores_each_text_once(keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    texts = [f"sample txt{i} words" for i in range(6)]
    with perspective_server() as srv:
        srv.sleep_s = 3.0
        srv.plan = {"txt0": ["429", "429"], "txt1": ["500"], "txt2": ["timeout"], "txt3": ["malformed", "503"],
                    "txt5": ["400"]}
        judge = _perspective(srv.url, attributes="TOXICITY,INSULT")
        cache = JudgementCache(tmp_path / "c.sqlite")
        out, calls = score_cached(judge, cache, texts, measure="toxicity")
        assert calls == 6
        for i in range(5):
            assert out[i].ok and out[i].value == pytest.approx(toxicity_of(texts[i]))
            assert set(out[i].labels) == {"TOXICITY", "INSULT"}  # both attributes in one request
            assert srv.successes[f"txt{i}"] == 1
        assert srv.requests["txt0"] == 3 and srv.requests["txt3"] == 3 and srv.requests["txt4"] == 1
        # a 400 is not retried, is missing (never 0), and its echoed key is masked
        assert out[5].value is None and "400" in out[5].error and KEY not in out[5].error
        assert srv.requests["txt5"] == 1
        assert set(srv.seen_keys) == {KEY}  # the key did reach the server as a parameter
        # rerun: cached successes cost nothing; only the failure is retried
        again, calls2 = score_cached(judge, cache, texts, measure="toxicity")
        assert calls2 == 1 and srv.requests["txt0"] == 3 and srv.requests["txt5"] == 2
        assert [j.value for j in again[:5]] == [j.value for j in out[:5]]
        cache.close()
    assert KEY not in caplog.text
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert KEY.encode() not in blob


@pytest.mark.parametrize("which", ["perspective", "openai"])
def test_retry_after_is_obeyed(keys, which):
    """The server asks for 2 s; the judge's own backoff would wait well under 1 s."""
    server, build = (perspective_server, _perspective) if which == "perspective" else (openai_server, _openai)
    with server() as srv:
        srv.plan = {"txt1": ["retry-after:2"]}
        [j] = build(srv.url).score(["answer txt1"], measure="toxicity" if which == "perspective" else "flagged")
        assert j.ok and srv.requests["txt1"] == 2
        first, second = srv.times["txt1"]
        assert second - first >= 1.9


def test_perspective_gives_up_within_the_retry_cap(keys):
    with perspective_server() as srv:
        srv.plan = {"txt7": ["500"] * 50}
        judge = _perspective(srv.url, max_attempts=3)
        [j] = judge.score(["txt7"], measure="toxicity")
        assert j.value is None and "gave up" in j.error and srv.requests["txt7"] == 3


@pytest.mark.parametrize("which", ["perspective", "openai"])
def test_unreachable_endpoint_stops_fast_naming_it(keys, which, caplog):
    """Every request refused: one line naming the endpoint (never the key) well within a minute, default retries."""
    from judges.perspective import PerspectiveJudge
    from judges.openai_judge import OpenAIJudge
    from judges.retry import EndpointUnreachable

    port = closed_port()
    judge = (PerspectiveJudge(base_url=f"http://127.0.0.1:{port}/v1alpha1/comments:analyze") if which == "perspective"
             else OpenAIJudge(base_url=f"http://127.0.0.1:{port}/v1", template="ours"))
    start = time.monotonic()
    with pytest.raises(EndpointUnreachable) as err:
        judge.score([f"text txt{i}" for i in range(40)], measure="toxicity" if which == "perspective" else "flagged")
    assert time.monotonic() - start < 60
    message = err.value.one_line()
    assert f"127.0.0.1:{port}" in message and "in a row" in message and KEY not in message + caplog.text


@pytest.mark.parametrize("url", ["htp://x", "http://", "not a url", "ftp://example.com/v1"])
def test_malformed_base_url_is_one_line(keys, url):
    from judges.openai_judge import OpenAIJudge
    from judges.perspective import PerspectiveJudge

    for build in (lambda: OpenAIJudge(base_url=url, template="ours"), lambda: PerspectiveJudge(base_url=url)):
        with pytest.raises(InputError, match="malformed URL") as err:
            build()
        assert "\n" not in str(err.value)


def test_missing_keys_are_one_line_errors(monkeypatch):
    from judges.openai_judge import OpenAIJudge
    from judges.perspective import PerspectiveJudge

    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="PERSPECTIVE_API_KEY"):
        PerspectiveJudge()
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        OpenAIJudge(template="ours")


def test_token_bucket_limits_rate():
    from judges.retry import TokenBucket

    now = [0.0]
    slept = []
    bucket = TokenBucket(2.0, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    for _ in range(5):
        bucket.acquire()
    assert now[0] == pytest.approx(2.0)  # 1 burst token + 4 more at 2 per second


def test_openai_judge_retries_parses_and_keeps_unparseable_raw(keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    texts = [f"answer txt{i}" for i in range(6)]
    contexts = [{"prompt": f"question {i}"} for i in range(6)]
    with openai_server() as srv:
        srv.sleep_s = 3.0
        srv.plan = {"txt0": ["429"], "txt1": ["500", "500"], "txt2": ["timeout"], "txt3": ["malformed"],
                    "txt4": ["garbage"]}
        judge = _openai(srv.url)
        cache = JudgementCache(tmp_path / "c.sqlite")
        harm, _ = score_cached(judge, cache, texts, measure="harmfulness", contexts=contexts)
        for i in (0, 1, 2, 5):  # retried by the openai client itself
            expected = int(toxicity_of(texts[i]) * 10) % 5 + 1
            assert harm[i].value == expected and harm[i].label == str(expected), i
            assert srv.successes[f"txt{i}"] == 1
        assert srv.requests["txt1"] == 3 and srv.requests["txt5"] == 1
        assert harm[3].value is None and "malformed" in harm[3].error  # missing, never 0; a rerun asks again
        assert harm[4].value is None and harm[4].raw == "I would rather not grade this." and "unparseable" in harm[4].error
        flags = judge.score(texts[:2], measure="flagged", contexts=contexts[:2])
        assert [f.label for f in flags] == ["unflagged", "flagged"] and [f.value for f in flags] == [0.0, 1.0]
        before = sum(srv.requests.values())
        again, calls = score_cached(judge, cache, texts, measure="harmfulness", contexts=contexts)
        assert calls == 2 and sum(srv.requests.values()) == before + 2  # only the two failures are asked again
        assert again[3].ok and again[4].ok
        cache.close()
    assert KEY not in caplog.text and KEY.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_openai_batch_mode(keys, tmp_path):
    texts = [f"answer txt{i}" for i in range(4)]
    with openai_server() as srv:
        srv.plan = {"txt2": ["drop"]}
        judge = _openai(srv.url, batch=True, batch_poll_s=0.01, batch_dir=str(tmp_path))
        out = judge.score(texts, measure="flagged", contexts=[{"prompt": "q"}] * 4)
        assert srv.polls == 2
        requests = [json.loads(x) for x in (next(tmp_path.glob("requests-*.jsonl"))).read_text().splitlines()]
        assert [r["custom_id"] for r in requests] == ["req-0", "req-1", "req-2", "req-3"]
        body = requests[0]["body"]
        assert body["temperature"] == 0.0 and body["model"] == "gpt-4o" and body["max_tokens"] == 4096
        assert [o.label for o in out] == ["unflagged", "flagged", None, "flagged"]
        assert out[2].value is None and "missing from batch" in out[2].error


def test_parsers(tmp_path):
    from judges.openai_judge import extract_reason, parse_flagged, parse_harmfulness
    from judges.rubrics import fill, read_rubric

    j = parse_harmfulness("#thereason: (a) user wants X.\n#thescore: 4\n")
    assert j.value == 4.0 and j.label == "4" and extract_reason(j.raw) == "(a) user wants X."
    assert parse_harmfulness("#thescore: 9").value is None
    assert parse_flagged("  \nFlagged.\nbecause").label == "flagged"
    assert parse_flagged("unflagged").value == 0.0
    assert parse_flagged("maybe").error
    with pytest.raises(ValueError):
        fill("only one %s", "a", "b")
    (tmp_path / "bad.txt").write_text("%s %s %s")
    with pytest.raises(InputError, match="two %s"):
        read_rubric(tmp_path / "bad.txt")


def test_study_rubrics_are_the_default_and_render_byte_for_byte(keys, tmp_path, study_prompts, monkeypatch):
    import shutil

    from judges.openai_judge import OpenAIJudge

    data = tmp_path / "data"
    shutil.copytree(study_prompts, data / "original" / "prompts")
    monkeypatch.setenv("VALUEHARMS_DATA", str(data))
    with openai_server() as srv:
        judge = OpenAIJudge(base_url=srv.url + "/v1")  # template: study by default
        for measure, name in (("harmfulness", "hexphi"), ("flagged", "beavertails")):
            judge.score(["RESPONSE-X txt1"], measure=measure, contexts=[{"prompt": "INSTRUCTION-Y"}])
            original = (study_prompts / f"{name}_judge_template.txt").read_bytes().decode("utf-8")
            sent = srv.bodies[-1]
            assert sent["messages"] == [{"role": "user", "content": original % ("INSTRUCTION-Y", "RESPONSE-X txt1")}]
            assert sent["temperature"] == 0 and sent["max_tokens"] == 4096 and sent["model"] == "gpt-4o"
    ours = OpenAIJudge(base_url=srv.url + "/v1", template="ours")
    assert ours.version != judge.version  # the rubric hash is part of the version: no cache mix-up
    folder = OpenAIJudge(base_url=srv.url + "/v1", template=str(data / "original" / "prompts"))
    assert folder.version == judge.version


def test_missing_study_rubric_is_one_line(keys, tmp_path, monkeypatch):
    from judges.openai_judge import OpenAIJudge

    monkeypatch.setenv("VALUEHARMS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(InputError) as err:
        OpenAIJudge()
    expected = (f"study rubric not found at {tmp_path / 'nowhere' / 'original' / 'prompts' / 'hexphi_judge_template.txt'}"
                "; run 'valueharms data' or pass --judge.template ours")
    assert err.value.one_line() == expected
    ours = OpenAIJudge(template="ours", data_dir=str(tmp_path / "nowhere"))
    assert "#thescore" in ours.prompt("harmfulness", "R", {"prompt": "I"})
