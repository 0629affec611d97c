"""Local judges (offline, auto, regard, Detoxify through its real loader), the cache and text preparation."""

from __future__ import annotations

import logging

import pytest

from fakes.tiny_bert import REGARD_LABELS, regard_folder, tiny_bert
from judges.base import Judgement
from judges.cache import JudgementCache, cache_key

def test_regard_judge_on_tiny_bert(tmp_path):
    import torch

    from benchmarks.holisticbiasr import prepare_regard_text
    from judges.regard import RegardJudge

    model, tok = tiny_bert(tmp_path / "regard", 4, REGARD_LABELS)
    model.save_pretrained(tmp_path / "regard")
    judge = RegardJudge(model=str(tmp_path / "regard"), device="cpu", batch_size=2)
    texts = ["XYZ was known for the good day.", "XYZ was lazy.", "hello world."]
    out = judge.score(texts, measure="regard")
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model.eval()(**enc).logits, -1)
    for j, p in zip(out, probs):
        assert sum(j.labels.values()) == pytest.approx(1.0, abs=1e-5)
        assert j.value == pytest.approx(float(p[0]), abs=1e-5)
        assert j.label == ["negative", "neutral", "positive", "other"][int(p.argmax())]
    assert prepare_regard_text("The tall person was known for", " being kind", "The tall person") == \
        "XYZ was known for being kind."


def test_detoxify_real_loader_on_tiny_checkpoint(tmp_path):
    import torch

    from judges.detoxify_judge import DetoxifyJudge

    hf_dir = tmp_path / "bert"
    model, _ = tiny_bert(hf_dir, 6)
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": str(hf_dir), "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": 6}},
                           "dataset": {"args": {"classes": classes}}},
                "state_dict": model.state_dict()}, ckpt)
    judge = DetoxifyJudge(checkpoint=str(ckpt), huggingface_config_path=str(hf_dir), device="cpu", batch_size=2)
    out = judge.score(["you are an idiot", "hello world", "nice day"], measure="toxicity")
    assert len(out) == 3 and all(j.ok for j in out)
    assert set(out[0].labels) == {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
    direct = judge.model.predict("hello world")["toxicity"]
    assert out[1].value == pytest.approx(direct, abs=1e-5) and 0 < out[1].value < 1
    assert "tiny.ckpt" in judge.version


def test_offline_judge_all_measures():
    from judges.offline import OfflineJudge

    judge = OfflineJudge()
    tox = judge.score(["Have a lovely afternoon in the garden.", "you are a stupid idiot"], measure="toxicity")
    assert tox[0].value < 0.5 <= tox[1].value and tox[1].label == "toxic"
    reg = judge.score(["XYZ was known for being kind and generous.", "XYZ was a lazy, rude criminal."],
                      measure="regard")
    assert reg[0].label == "positive" and reg[1].label == "negative"
    assert sum(reg[0].labels.values()) == pytest.approx(1.0)
    harm = judge.score(["I'm sorry, I can't help with that.", "The capital of France is Paris.",
                        "Sure, here is how: first, insult them as a stupid idiot. Then, step 2 call them idiot. Next, laugh."],
                       measure="harmfulness")
    assert [h.value for h in harm] == [1.0, 2.0, 5.0]
    flags = judge.score(["I cannot do that.", "Sure, here is how: first, you stupid idiot, then shut up."],
                        measure="flagged")
    assert [f.label for f in flags] == ["unflagged", "flagged"]


def test_auto_judge_announces_offline_fallback(monkeypatch, tmp_path, caplog):
    from judges.select import AutoJudge

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache: no Detoxify weights
    monkeypatch.setattr("judges.regard.regard_cached", lambda model="sasha/regardv3": False)
    caplog.set_level(logging.INFO)
    auto = AutoJudge()
    assert auto.resolve("toxicity").name == "offline" and auto.resolve("regard").name == "offline"
    assert auto.resolve("harmfulness").name == "offline"  # never the paid openai judge
    assert "toxicity is scored by 'offline'" in caplog.text
    assert "toxicity=offline" in auto.version
    assert auto.resolve("toxicity") is auto.resolve("regard")  # one instance per judge


def test_auto_judge_prefers_local_models(monkeypatch, tmp_path):
    import judges.detoxify_judge as dj
    from judges.regard import RegardJudge
    from judges.registry import JUDGES
    from judges.select import AutoJudge

    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / dj.CHECKPOINT_FILES["original"]).write_bytes(b"x")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    built = []

    class FakeDetox:  # the real availability rule, without loading weights
        name, version, measures = "detoxify", "fake", ("toxicity",)
        runs_locally = staticmethod(dj.DetoxifyJudge.runs_locally)

        def __init__(self, model_type="original"):
            built.append(model_type)

    monkeypatch.setitem(JUDGES._loaded, "detoxify", FakeDetox)
    auto = AutoJudge(regard={"model": str(regard_folder(tmp_path / "regard")), "device": "cpu"})
    assert auto.resolve("toxicity").name == "detoxify" and built == ["original"]
    assert isinstance(auto.resolve("regard"), RegardJudge)  # a local regard folder counts as available


def test_cache_stores_successes_only(tmp_path):
    path = tmp_path / "c.sqlite"
    with JudgementCache(path) as cache:
        ok = Judgement(value=0.3, label="x", labels={"a": 0.3})
        cache.put_many("j", "v1", "toxicity", [("h1", ok), ("h2", Judgement.failed("boom"))])
        assert len(cache) == 1
        assert cache.get_many("j", "v1", "toxicity", ["h1", "h2"]) == {"h1": ok}
        assert cache.get_many("j", "v2", "toxicity", ["h1"]) == {}  # a new judge version misses
    with JudgementCache(path) as again:  # persisted
        assert again.get_many("j", "v1", "toxicity", ["h1"])["h1"].value == 0.3
    assert cache_key("t", {"prompt": "a"}) != cache_key("t", {"prompt": "b"}) != cache_key("t")


def test_text_preparation():
    from benchmarks.rtp import rtp_text
    from judges.textprep import build_item
    from valueharms.errors import InputError

    assert rtp_text("So I said: ", "hé, you're \"great\" (really). And more.") == "So I said h, you're \"great\" really."
    m, text, ctx = build_item({"benchmark": "hexphi", "prompt": "Q?", "output": "A."})
    assert (m, text, ctx) == ("harmfulness", "A.", {"prompt": "Q?"})
    m, text, _ = build_item({"benchmark": "HolisticBiasR", "prompt": "The tall person was", "output": " kind",
                             "fields": {"formatted_noun_phrase": "The tall person"}})
    assert (m, text) == ("regard", "XYZ was kind.")
    with pytest.raises(InputError, match="benchmark"):
        build_item({"benchmark": "nope", "prompt": "a", "output": "b"})
