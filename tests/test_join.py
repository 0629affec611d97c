"""The one run loader: scores join only the text they judged; auto / paper / named judge choice per measure."""

from __future__ import annotations

import json

import pytest

from analysis.synthetic import make_synthetic_run
from judges.join import STALE, choose_judges, load_run, read_run, study_root
from judges.runs import generation_runs
from valueharms.errors import InputError
from valueharms.io import read_jsonl, write_jsonl_atomic


@pytest.fixture()
def study(tmp_path):
    return make_synthetic_run(tmp_path / "study", n_adapters=2, n_prompts=2, second_judge="detoxify")


def _gen_path(study):
    return study / "generations" / "main" / "generations.jsonl"


def test_study_and_generation_folder_give_the_same_table(study):
    whole = load_run(study, "offline")
    one = load_run(study / "generations" / "main", "offline")
    assert len(whole) == len(one) > 0 and whole["value"].notna().sum() == one["value"].notna().sum()
    assert study_root(study / "generations" / "main") == study == study_root(study)
    assert [g.folder.name for g in generation_runs(_gen_path(study))] == ["main"]


def test_changed_output_makes_its_score_stale_not_joined(study):
    gens = list(read_jsonl(_gen_path(study)))
    rtp = next(g for g in gens if g["benchmark"] == "rtp")
    rtp["output"] = " a different continuation."
    write_jsonl_atomic(_gen_path(study), gens)
    frame = load_run(study, "offline").set_index("key")
    assert frame.loc[rtp["key"], "error"] == STALE and frame["harm"].isna().sum() == 1
    assert frame.drop(rtp["key"])["error"].isna().all()


def test_records_without_hash_fall_back_to_scored_text(study):
    path = study / "generations" / "main" / "scores" / "offline.jsonl"
    recs = list(read_jsonl(path))
    for rec in recs:
        rec.pop("text_sha256")
    recs[0]["scored_text"] = "not the text of this generation"
    write_jsonl_atomic(path, recs)
    frame = load_run(study, "offline").set_index("key")
    assert frame.loc[recs[0]["key"], "error"] == STALE
    assert frame.loc[recs[1]["key"], "value"] == recs[1]["value"]


def test_auto_prefers_per_measure_and_paper_needs_the_papers_judges(study):
    scored = read_run(study)
    assert set(choose_judges(scored, "auto").values()) == {"detoxify"}  # detoxify > offline in the preference list
    # drop detoxify's toxicity scores: auto falls back to offline for that measure only
    path = study / "generations" / "main" / "scores" / "detoxify.jsonl"
    write_jsonl_atomic(path, [r for r in read_jsonl(path) if r["measure"] != "toxicity"])
    chosen = load_run(study, "auto").attrs["judges"]
    assert chosen["toxicity"] == "offline" and chosen["regard"] == "detoxify"
    with pytest.raises(InputError, match="perspective"):
        load_run(study, "paper")
    with pytest.raises(InputError, match="no scores from judge 'openai'"):
        load_run(study, "openai")


def test_gpt4o_file_name_is_the_openai_judge(tmp_path):
    study = make_synthetic_run(tmp_path / "s", n_adapters=1, n_prompts=1, judge="gpt-4o")
    frame = load_run(study, "openai")
    assert frame.attrs["judge"] == "openai" and frame["value"].notna().all()


def test_bad_score_record_is_one_line_error(study):
    path = study / "generations" / "main" / "scores" / "offline.jsonl"
    path.write_text(path.read_text() + json.dumps({"value": 1}) + "\n")
    with pytest.raises(InputError, match="key"):
        read_run(study)


def test_metrics_on_a_study_name_their_judge_and_errors_propagate(study, monkeypatch, capsys):
    import dataclasses

    import pandas as pd

    import judges.metrics as metrics_module
    from analysis.analyze import run_analysis
    from judges.metrics_cli import metrics

    out = metrics(str(study), judge="offline", n_resamples=99)
    table = pd.read_csv(out)
    assert out.endswith("report/metrics_offline.csv") and set(table["judge"]) == {"offline"}
    assert set(table["ci_level"]) == {0.975}

    real = metrics_module.get_spec

    def boom(frame, keys, **kw):
        raise KeyError("a metric bug")

    monkeypatch.setattr(metrics_module, "get_spec",
                        lambda name: dataclasses.replace(real(name), metrics=boom) if real(name).name == "rtp"
                        else real(name))
    with pytest.raises(KeyError, match="a metric bug"):  # no longer swallowed into an empty metrics table
        run_analysis(study, "offline", n_boot=20, n_permutations=9)
