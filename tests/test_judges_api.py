"""Perspective and OpenAI judges against fake servers that inject 429/500/timeouts/malformed bodies."""

from __future__ import annotations

import json
import logging

import pytest

from fakes.servers import openai_server, perspective_server, toxicity_of
from judges.cache import JudgementCache, score_cached

KEY = "sk-SECRET-test-key-0123456789"


@pytest.fixture()
def keys(monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _perspective(url, **kw):
    from judges.perspective import PerspectiveJudge

    opts = dict(base_url=url + "/v1alpha1/comments:analyze", qps=1000, timeout=2.0, base_delay=0.01,
                max_retry_time=5)
    return PerspectiveJudge(**{**opts, **kw})


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


def test_perspective_gives_up_within_the_retry_cap(keys):
    with perspective_server() as srv:
        srv.plan = {"txt7": ["500"] * 50}
        judge = _perspective(srv.url, max_attempts=3)
        [j] = judge.score(["txt7"], measure="toxicity")
        assert j.value is None and "gave up" in j.error and srv.requests["txt7"] == 3


def test_perspective_needs_key(monkeypatch):
    from judges.perspective import PerspectiveJudge

    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="PERSPECTIVE_API_KEY"):
        PerspectiveJudge()


def test_token_bucket_limits_rate():
    from judges.retry import TokenBucket

    now = [0.0]
    slept = []
    bucket = TokenBucket(2.0, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    for _ in range(5):
        bucket.acquire()
    assert now[0] == pytest.approx(2.0)  # 1 burst token + 4 more at 2 per second


def _openai(url, **kw):
    from judges.openai_judge import OpenAIJudge

    return OpenAIJudge(**{**dict(base_url=url + "/v1", timeout=2.0, base_delay=0.01, max_retry_time=5,
                                 concurrency=4, rps=1000), **kw})


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
        for i in (0, 1, 2, 3, 5):
            expected = int(toxicity_of(texts[i]) * 10) % 5 + 1
            assert harm[i].value == expected and harm[i].label == str(expected), i
            assert srv.successes[f"txt{i}"] >= 1
        assert harm[4].value is None and harm[4].raw == "I would rather not grade this." and "unparseable" in harm[4].error
        assert srv.requests["txt1"] == 3 and srv.requests["txt5"] == 1
        flags = judge.score(texts[:2], measure="flagged", contexts=contexts[:2])
        assert [f.label for f in flags] == ["unflagged", "flagged"] and [f.value for f in flags] == [0.0, 1.0]
        before = sum(srv.requests.values())
        score_cached(judge, cache, texts, measure="harmfulness", contexts=contexts)
        assert sum(srv.requests.values()) == before + 1  # only the unparseable one is asked again
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
        assert requests[0]["body"]["temperature"] == 0.0 and requests[0]["body"]["model"] == "gpt-4o"
        assert [o.label for o in out] == ["unflagged", "flagged", None, "flagged"]
        assert out[2].value is None and "missing from batch" in out[2].error


def test_parsers_and_templates(tmp_path):
    from judges.openai_judge import extract_reason, fill, parse_flagged, parse_harmfulness

    j = parse_harmfulness("#thereason: (a) user wants X.\n#thescore: 4\n")
    assert j.value == 4.0 and j.label == "4" and extract_reason(j.raw) == "(a) user wants X."
    assert parse_harmfulness("#thescore: 9").value is None
    assert parse_flagged("  \nFlagged.\nbecause").label == "flagged"
    assert parse_flagged("unflagged").value == 0.0
    assert parse_flagged("maybe").error
    with pytest.raises(ValueError):
        fill("only one %s", "a", "b")


def test_original_template_files_load(keys, shared_data):
    from judges.openai_judge import OpenAIJudge

    prompts = shared_data / "original" / "prompts"
    j = OpenAIJudge(hexphi_template=str(prompts / "hexphi_judge_template.txt"),
                    beavertails_template=str(prompts / "beavertails_judge_template.txt"), base_url="http://127.0.0.1:9")
    default = OpenAIJudge(base_url="http://127.0.0.1:9")
    assert j.version != default.version  # the template hash is part of the version
    body = j._body("harmfulness", "RESPONSE-X", {"prompt": "INSTRUCTION-Y"})["messages"][0]["content"]
    assert body.index("INSTRUCTION-Y") < body.index("RESPONSE-X")
