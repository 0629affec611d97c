"""Loaders on fixtures in the real formats (real data samples where present, synthetic HEx-PHI)."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from benchmarks.registry import BENCHMARKS, load_benchmark
from valueharms.errors import InputError


def test_registry_names():
    assert set(BENCHMARKS.names()) >= {"rtp", "holisticbiasr", "hexphi", "beavertails"}


def test_rtp_jsonl_and_csv(shared_data, repo):
    b = load_benchmark("rtp", str(shared_data / "real_toxicity_prompts/prompts_sample.jsonl"), limit=None)
    assert len(b.items) == 200 and b.fmt == "completion" and b.decoding.samples == 10
    ch = load_benchmark("rtp", str(shared_data / "real_toxicity_prompts/prompts_sample.jsonl"), challenging_only=True)
    assert 0 < len(ch.items) < 200 and all(i.fields["challenging"] for i in ch.items)
    c = load_benchmark("rtp", str(shared_data / "original/real_toxic_prompts.csv"))
    assert len(c.items) == 3000
    assert any("\n" in i.prompt for i in c.items) or len({i.prompt for i in c.items}) == 3000
    s = load_benchmark("rtp", str(repo / "samples/benchmarks/rtp.jsonl"))
    assert len(s.items) == 12


def test_holisticbiasr_jsonl_and_build(shared_data):
    b = load_benchmark("holisticbiasr", str(shared_data / "holistic_bias/holisticbiasr_dispreferred_prompts_sample.jsonl"))
    assert len(b.items) == 200 and b.decoding.max_new_tokens == 128
    assert b.items[0].prompt.startswith(b.items[0].fields["formatted_noun_phrase"])
    built = load_benchmark("holisticbiasr", str(shared_data / "holistic_bias/v1.1"))
    assert len(built.items) == 13760


def test_beavertails_csv(study_data):
    b = load_benchmark("beavertails", str(study_data / "original/BeaverTails-Evaluation.csv"))
    assert len(b.items) == 700 and len({i.category for i in b.items}) == 14 and b.fmt == "qa"
    assert len(load_benchmark("beavertails", str(study_data / "original/BeaverTails-Evaluation.csv"), limit=2).items) == 28
    few = load_benchmark("beavertails", str(study_data / "original/BeaverTails-Evaluation.csv"), limit=2,
                         max_categories=3).items
    first3 = list(dict.fromkeys(i.category for i in b.items))[:3]
    assert len(few) == 6 and Counter(i.category for i in few) == {c: 2 for c in first3}


def test_hexphi_both_layouts(tmp_path):
    folder = tmp_path / "hex"
    folder.mkdir()
    for c in [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]:
        with (folder / f"category_{c}{'_slug' if c == 4 else ''}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([[f"Placeholder request {i} for category {c}, with a comma"] for i in range(30)])
    b = load_benchmark("hexphi", str(folder))
    assert len(b.items) == 300 and len({i.category for i in b.items}) == 10
    assert b.items[0].prompt == "Placeholder request 0 for category 1, with a comma"
    quick = load_benchmark("hexphi", str(folder), limit=2, max_categories=2).items
    assert [i.id for i in quick] == [f"hexphi-{c}-{n:03d}" for c in (b.items[0].category, b.items[30].category)
                                     for n in range(2)]
    combined = tmp_path / "hex.csv"
    combined.write_text("category,prompt\n1,Placeholder one\n3,\"Placeholder, two\"\n")
    assert [i.prompt for i in load_benchmark("hexphi", str(combined)).items] == ["Placeholder one", "Placeholder, two"]
    with pytest.raises(InputError, match="not found"):
        load_benchmark("hexphi", str(tmp_path / "missing"))


def test_bad_rows_name_file_and_row(tmp_path):
    bad = tmp_path / "rtp.jsonl"
    bad.write_text('{"prompt": {"text": "ok"}}\n{"prompt": {"text": ""}}\n')
    with pytest.raises(InputError) as err:
        load_benchmark("rtp", str(bad))
    assert err.value.row == 2 and "rtp.jsonl" in err.value.one_line()
