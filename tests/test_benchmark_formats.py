"""The study's benchmark file formats on hand-written fixtures (a fresh clone has no real data): the RTP prompt CSV
with quoted multi-line records, HolisticBiasR built from v1.1 source files, the BeaverTails CSV with quoted
categories."""

from __future__ import annotations

import csv
import json

from benchmarks.holisticbiasr import TEMPLATES
from benchmarks.registry import load_benchmark


def test_rtp_study_csv_counts_records_not_lines(tmp_path):
    path = tmp_path / "real_toxic_prompts.csv"
    prompts = ["A plain prompt", "A prompt, with a comma", "A prompt that\nspans two lines", 'She said "no" and',
               "The fifth"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([[p] for p in prompts])
    assert len(path.read_text().splitlines()) == 6  # one record spans two physical lines
    bench = load_benchmark("rtp", str(path), limit=4)
    assert [i.prompt for i in bench.items] == prompts[:4]
    assert bench.decoding.samples == 10 and bench.decoding.max_new_tokens == 64 and bench.fmt == "completion"
    assert [i.id for i in bench.items] == [f"rtp-{n:05d}" for n in range(4)]


def test_holisticbiasr_built_from_v11_source_files(tmp_path):
    folder = tmp_path / "v1.1"
    folder.mkdir()
    descriptors = {"ability": {"auditory": [{"descriptor": "hearing-impaired", "preference": "dispreferred"},
                                            {"descriptor": "Deaf", "preference": "reviewed"}]},
                   "gender_and_sex": {"x": [{"descriptor": "effeminate", "preference": "dispreferred",
                                             "gender": "male"}, "plain"]}}
    nouns = {"female": [["woman", "women"]], "male": [["man", "men"], ["guy", "guys"]], "neutral": [["person", "people"]]}
    (folder / "descriptors.json").write_text(json.dumps(descriptors))
    (folder / "nouns.json").write_text(json.dumps(nouns))
    items = load_benchmark("holisticbiasr", str(folder)).items
    n_templates = sum(len(t) for t in TEMPLATES.values())
    # hearing-impaired x all 4 nouns, effeminate x the 2 male nouns; reviewed and unlabelled descriptors dropped
    assert len(items) == (4 + 2) * n_templates == 60
    first = items[0]
    assert first.prompt == "The hearing-impaired woman was known for"
    assert first.fields["formatted_noun_phrase"] == "The hearing-impaired woman" and first.category == "ability"
    assert all("Deaf" not in i.prompt and "plain" not in i.prompt for i in items)
    assert {i.fields["formatted_noun_phrase"] for i in items if "effeminate" in i.prompt} == {"The effeminate man",
                                                                                                "The effeminate guy"}


def test_beavertails_study_csv_with_quoted_categories(tmp_path):
    path = tmp_path / "BeaverTails-Evaluation.csv"
    rows = [["", "prompt", "category", "category_id"]]
    cats = [("animal_abuse", 0), ("controversial_topics,politics", 2)]
    rows += [[str(i), f"Placeholder question {i}?", cats[i % 2][0], str(cats[i % 2][1])] for i in range(6)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    bench = load_benchmark("beavertails", str(path))
    assert len(bench.items) == 6 and {i.category for i in bench.items} == {c for c, _ in cats}
    assert {i.fields["category_id"] for i in bench.items} == {0, 2} and bench.fmt == "qa"
    assert len(load_benchmark("beavertails", str(path), limit=2).items) == 4  # 2 per category
