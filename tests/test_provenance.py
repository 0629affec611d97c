"""Generation provenance: fingerprints, run.json refusals naming the changed fields, --overwrite, one writer per
run, resume by fingerprint, and shards that readers merge by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightning.pytorch import Trainer

from benchmarks.generation import BenchmarkDataModule, GenerationModule
from benchmarks.runfile import Shard, config_changes
from valueharms.cli import main
from valueharms.errors import InputError

REPO = Path(__file__).resolve().parents[1]
RTP = str(REPO / "samples/benchmarks/rtp.jsonl")


def datamodule(out: Path, **kw) -> BenchmarkDataModule:
    args = dict(benchmarks={"rtp": {"source": RTP}}, output=str(out), limit=2, samples_per_prompt=1, batch_size=8,
                max_new_tokens=3, icl_template="ours")
    args.update(kw)
    return BenchmarkDataModule(**args)


def predict(model_dir: Path, dm: BenchmarkDataModule) -> list[dict]:
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.predict(GenerationModule(model=str(model_dir), greedy=True), datamodule=dm, return_predictions=False)
    return [json.loads(line) for line in Path(dm.run.path).read_text().splitlines()]


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("valueharms:")]
    assert len(lines) == 1, lines
    return lines[0]


def _config(tmp_path: Path, model_dir: Path, tokens: int) -> Path:
    cfg = tmp_path / f"c{tokens}.yaml"
    cfg.write_text(f"""trainer: {{accelerator: cpu, logger: false, enable_progress_bar: false}}
model: {{class_path: benchmarks.generation.GenerationModule, init_args: {{model: {model_dir}, greedy: true}}}}
data:
  class_path: benchmarks.generation.BenchmarkDataModule
  init_args: {{output: {tmp_path}/run/generations.jsonl, benchmarks: {{rtp: {{source: {RTP}, limit: 2}}}},
               samples_per_prompt: 1, max_new_tokens: {tokens}}}
""")
    return cfg


def test_decoding_change_refused_then_overwrite_moves_old_files_aside(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    assert main(["predict", "--config", str(_config(tmp_path, tiny_model_dir, 3))]) == 0
    before = {name: (run / name).read_bytes() for name in ("generations.jsonl", "run.json", "config.yaml")}
    capsys.readouterr()
    changed = _config(tmp_path, tiny_model_dir, 4)
    assert main(["predict", "--config", str(changed)]) == 2
    line = one_error_line(capsys)
    assert "benchmarks.rtp.decoding.max_new_tokens (3 -> 4)" in line and "overwrite" in line
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing rewritten, config.yaml neither
    assert main(["predict", "--config", str(changed), "--data.init_args.overwrite", "true"]) == 0
    old = list((run / "superseded").glob("*/generations.jsonl"))
    assert len(old) == 1 and old[0].read_bytes() == before["generations.jsonl"]
    assert (old[0].parent / "run.json").read_bytes() == before["run.json"]
    recs = [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and {r["decoding"]["max_new_tokens"] for r in recs} == {4}
    assert json.loads((run / "run.json").read_text())["config"]["benchmarks"]["rtp"]["decoding"]["max_new_tokens"] == 4


def test_retrained_adapter_refused_and_records_carry_its_hash(tmp_path, tiny_model_dir):
    from test_generation import make_adapters

    make_adapters(tiny_model_dir, tmp_path / "adapters")
    out = tmp_path / "g" / "generations.jsonl"
    recs = predict(tiny_model_dir, datamodule(out, vanilla=False, adapters_root=str(tmp_path / "adapters")))
    assert {r["condition"] for r in recs} == {"vim:Pow", "vim:Uni"}
    assert len({r["adapter_sha256"] for r in recs}) == 2 and len({r["fingerprint"] for r in recs}) == 4
    weights = tmp_path / "adapters" / "Pow" / "adapter_model.safetensors"
    make_adapters(tiny_model_dir, tmp_path / "retrained")  # same seeds: the same weights
    assert weights.read_bytes() == (tmp_path / "retrained" / "Pow" / "adapter_model.safetensors").read_bytes()
    assert predict(tiny_model_dir, datamodule(out, vanilla=False, adapters_root=str(tmp_path / "adapters"))) == recs
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a retrained adapter: other weights in the same folder
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"conditions\.vim:Pow\.adapter_sha256") as err:
        predict(tiny_model_dir, datamodule(out, vanilla=False, adapters_root=str(tmp_path / "adapters")))
    assert "vim:Uni" not in str(err.value) and "\n" not in str(err.value)


def test_resume_skips_only_keys_with_the_same_fingerprint(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "generations.jsonl"
    first = predict(tiny_model_dir, datamodule(out))
    legacy = dict(first[0])
    legacy.pop("fingerprint")  # a record from before fingerprints (or made with other settings)
    out.write_text(json.dumps(legacy) + "\n" + json.dumps(first[1]) + "\n")
    capsys.readouterr()
    dm = datamodule(out)
    recs = predict(tiny_model_dir, dm)
    assert [it.key for it in dm.items] == [first[0]["key"]]  # only the record without a matching fingerprint
    assert recs[-1]["fingerprint"] == first[0]["fingerprint"] and len(recs) == 3
    said = capsys.readouterr().out
    assert "1 stored generations were made with other settings" in said
    assert "2 generations in" in said and "1 already there, 1 to generate" in said
    again = datamodule(out)
    predict(tiny_model_dir, again)
    assert again.items == [] and "2 already there, nothing to generate" in capsys.readouterr().out


def test_added_conditions_extend_the_run_without_changing_recorded_values(tmp_path, tiny_model_dir):
    out = tmp_path / "generations.jsonl"
    predict(tiny_model_dir, datamodule(out))
    recorded = json.loads((tmp_path / "run.json").read_text())
    icl = dict(icl_distributions=str(REPO / "samples/values/distributions.tsv"), icl_names=["Pow"])
    recs = predict(tiny_model_dir, datamodule(out, **icl))
    assert {r["condition"] for r in recs} == {"vanilla", "icl:Pow"} and len(recs) == 4
    extended = json.loads((tmp_path / "run.json").read_text())
    assert extended["created"] == recorded["created"]
    assert extended["config"]["conditions"]["vanilla"] == recorded["config"]["conditions"]["vanilla"]
    assert extended["config"]["conditions"]["icl:Pow"]["values"]["Power"] == 6.0


def test_second_predict_on_the_same_run_exits_with_one_line(tmp_path, tiny_model_dir, capsys):
    from valueharms.locking import RunLock

    with RunLock(tmp_path / "run" / "generations.jsonl", what="predict"):  # a predict already writing this run
        assert main(["predict", "--config", str(_config(tmp_path, tiny_model_dir, 3))]) == 2
    assert "another predict is writing here" in one_error_line(capsys)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_two_shards_split_by_condition_and_readers_merge_them(tmp_path, tiny_model_dir):
    from analysis.data import generation_files
    from judges.score import generation_runs, read_generations

    icl = dict(icl_distributions=str(REPO / "samples/values/distributions.tsv"), icl_names=["Pow", "Uni"])
    whole = {r["key"]: r for r in predict(tiny_model_dir, datamodule(tmp_path / "one" / "generations.jsonl", **icl))}
    shards = [predict(tiny_model_dir, datamodule(tmp_path / "two" / "generations.jsonl", shard=f"{i}/2", **icl))
              for i in range(2)]
    conds = [{r["condition"] for r in recs} for recs in shards]
    assert all(conds) and not conds[0] & conds[1] and conds[0] | conds[1] == {"vanilla", "icl:Pow", "icl:Uni"}
    names = sorted(p.name for p in generation_files(tmp_path / "two"))
    assert names == ["generations.shard-0-of-2.jsonl", "generations.shard-1-of-2.jsonl"]
    files = generation_runs(tmp_path / "two")[0].files
    merged = {rec["key"]: rec for _, _, rec in read_generations(files)}
    assert merged.keys() == whole.keys()
    assert all(merged[k]["output"] == whole[k]["output"] and merged[k]["fingerprint"] == whole[k]["fingerprint"]
               for k in whole)


def test_shard_parsing_and_balanced_split():
    assert Shard.parse(None) is None and Shard.parse("0/1") is None and Shard.parse(" 3 / 8 ") == Shard(3, 8)
    for bad in ("8/8", "-1/2", "a/b", "1"):
        with pytest.raises(InputError, match="shard"):
            Shard.parse(bad)
    costs = {f"vim:{i}": 10 for i in range(9)} | {"vanilla": 40, "icl:x": 25}
    owners = [Shard(i, 4).select(costs) for i in range(4)]
    assert sorted(c for o in owners for c in o) == sorted(costs)  # each condition on exactly one shard
    loads = [sum(costs[c] for c in o) for o in owners]
    assert max(loads) - min(loads) <= 10 and owners == [Shard(i, 4).select(dict(costs)) for i in range(4)]


def test_config_changes_name_changed_and_reshaped_fields():
    old = {"a": {"b": 1, "c": [1, 2]}, "s": ["Power"], "gone": 1}
    new = {"a": {"b": 2, "c": [1, 2], "new": 3}, "s": {"*": ["Power"]}}
    assert config_changes(old, new) == ["a.b (1 -> 2)", "s (changed shape)"]


@pytest.mark.parametrize("args,field", [(["--data.init_args.shard", "2/2"], "shard"),
                                        (["--model.init_args.backend", "engine"], "backend")])
def test_bad_shard_or_backend_is_one_line(tmp_path, tiny_model_dir, capsys, args, field):
    assert main(["predict", "--config", str(_config(tmp_path, tiny_model_dir, 3)), *args]) == 2
    assert f"field '{field}'" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_one_source_spelled_relative_or_absolute_is_the_same_run(tmp_path, tiny_model_dir, monkeypatch, capsys):
    out = tmp_path / "generations.jsonl"
    predict(tiny_model_dir, datamodule(out))  # the source as an absolute path (the quickstart's rewritten config)
    monkeypatch.chdir(REPO)
    again = datamodule(out, benchmarks={"rtp": {"source": "samples/benchmarks/rtp.jsonl"}})
    capsys.readouterr()
    predict(tiny_model_dir, again)
    assert again.items == [] and "nothing to generate" in capsys.readouterr().out
    other = tmp_path / "rtp.jsonl"
    other.write_text("\n".join(Path(RTP).read_text().splitlines()[1:]) + "\n")
    with pytest.raises(InputError, match="benchmarks.rtp.source"):
        predict(tiny_model_dir, datamodule(out, benchmarks={"rtp": {"source": str(other)}}))
