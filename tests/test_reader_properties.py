"""Property tests: arbitrary bytes and arbitrary rows given to the distribution, argument, benchmark and generation
readers raise only the project's one-line InputError (or parse), never another exception."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.registry import load_benchmark
from benchmarks.runfile import GenerationRun
from judges.join import load_run
from valueharms.errors import InputError
from valueharms.io import read_jsonl, read_jsonl_rows
from valueharms.values import VALUES, load_distributions, read_names
from vim.data import load_arguments, load_survey, load_touche

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: cells that are valid somewhere, near-valid, or hostile
CELLS = st.one_of(
    st.sampled_from(["{noun_phrase} was", "{x}", "{0}", "{", "0", "1", "1.0", "6.0", "3.5", "7", "-1", "nan", "inf", "", " ", "in favor of", "against",
                     "Pow", "close_Pow_2", "..", "a/b", '"', '"quoted, cell"', "x\ty", "A01002", "Achievement",
                     "\u2028", "\x00", "\ufeff", "category_1", "{}", "[]", "null"]),
    st.text(max_size=12))
HEADERS = st.sampled_from([
    ["Country", *VALUES], ["name", *VALUES], ["", "Conclusion", "Stance", "Premise", *VALUES],
    ["Unnamed: 0", "Conclusion", "Stance", "Premise", *VALUES], ["Argument ID", "Conclusion", "Stance", "Premise"],
    ["prompt", "category", "category_id"], ["", "prompt", "category", "category_id"], ["prompt"], ["category", "prompt"],
    ["Country", *VALUES[:5]],
])


@st.composite
def tables(draw) -> bytes:
    """A header from a known format + rows of random cells (random widths) joined by a random delimiter."""
    header = draw(st.one_of(HEADERS, st.lists(CELLS, min_size=1, max_size=6)))
    sep = draw(st.sampled_from(["\t", ",", ";", " "]))
    width = len(header)
    rows = draw(st.lists(st.lists(CELLS, min_size=max(0, width - 2), max_size=width + 2), max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", ""]))
    text = sep.join(header) + "\n" + "\n".join(sep.join(r) for r in rows) + end
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text.encode("utf-8", "replace")


@st.composite
def jsonl_files(draw) -> bytes:
    records = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), CELLS),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.sampled_from(
                                                       ["key", "prompt", "text", "prompt_text", "challenging",
                                                        "noun_phrase", "formatted_noun_phrase", "axis", "benchmark",
                                                        "descriptor", "continuation", "category", "template"]), inner, max_size=5)),
                           max_leaves=8)
    import json

    lines = draw(st.lists(st.one_of(records.map(lambda r: json.dumps(r)), CELLS), max_size=5))
    return ("\n".join(lines) + draw(st.sampled_from(["\n", ""]))).encode("utf-8", "replace")


ANY_BYTES = st.one_of(st.binary(max_size=300), tables(), jsonl_files())


@contextmanager
def written(data: bytes, name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        yield path


def only_input_errors(fn: Callable[[], object]) -> None:
    try:
        fn()
    except InputError as err:
        assert "\n" not in str(err)


@SETTINGS
@given(ANY_BYTES, st.sampled_from(["d.tsv", "d.csv"]))
def test_distribution_reader(data, name):
    with written(data, name) as path:
        only_input_errors(lambda: load_distributions(path))
        only_input_errors(lambda: read_names(path))


@SETTINGS
@given(ANY_BYTES, st.sampled_from(["valueEval_10.csv", "args.tsv", "arguments-training.tsv"]))
def test_argument_readers(data, name):
    with written(data, name) as path:
        only_input_errors(lambda: load_arguments(path))
        if name.startswith("arguments-"):
            path.with_name("labels-training.tsv").write_bytes(data)
            only_input_errors(lambda: load_touche(path))


@SETTINGS
@given(ANY_BYTES)
def test_stage2_split_folder(data):
    with written(data, "ag/value_split/train.csv") as path:
        (path.parent / "valid.csv").write_bytes(data)
        (path.parent.parent / "test.csv").write_bytes(data)
        only_input_errors(lambda: load_survey(path.parent.parent))


@SETTINGS
@given(ANY_BYTES, st.sampled_from([("rtp", "p.jsonl"), ("rtp", "p.csv"), ("holisticbiasr", "h.jsonl"),
                                   ("beavertails", "b.csv"), ("hexphi", "hex.csv"), ("hexphi", "dir/category_3.csv"),
                                   ("holisticbiasr", "dir/descriptors.json")]))
def test_benchmark_readers(data, case):
    name, file_name = case
    with written(data, file_name) as path:
        source = path.parent if file_name.startswith("dir/") else path
        if file_name.endswith("descriptors.json"):
            path.with_name("nouns.json").write_bytes(data)
        only_input_errors(lambda: load_benchmark(name, str(source)))


@SETTINGS
@given(ANY_BYTES)
def test_generation_file_readers(data):
    with written(data, "run/generations/main/generations.jsonl") as path:
        only_input_errors(lambda: list(read_jsonl(path)))
        only_input_errors(lambda: list(read_jsonl_rows(path)))
        only_input_errors(lambda: GenerationRun(path).done())
        only_input_errors(lambda: load_run(path.parent, "auto"))
