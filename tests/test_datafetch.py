"""`valueharms data`: verified, resumable downloads from a local HTTP server, a mirror folder, prompt extraction."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from fakes.fileserver import FileServer
from valueharms import datafetch
from valueharms.cli import main
from valueharms.datafetch import extract_constant, fetch
from valueharms.datasources import STUDY_COMMIT, STUDY_FILES, Extract, FileSpec
from valueharms.errors import InputError

BIG = bytes(range(256)) * 400  # 100 KiB: several chunks
SMALL = "Achievement\tPower\n6.0\t1.0\n".encode()
SOURCE = '''
LONG = """
Role-play.
Score: {power_score}
{input_text}
""".strip()

def judge():
    judge_template = """Q: \\"%s\\"
A: \\"%s\\""""
    return judge_template
'''


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec(path: str, url: str | None, data: bytes | None, **kw) -> FileSpec:
    return FileSpec(path, url, sha(data) if data is not None else None, len(data) if data else None, "g", "test",
                    "test", **kw)


@pytest.fixture()
def server():
    with FileServer({"/big.bin": BIG, "/small.tsv": SMALL, "/src/prompts.py": SOURCE.encode()}) as srv:
        yield srv


def test_download_verifies_honours_umask_and_skips_present(tmp_path, server):
    specs = [spec("a/big.bin", server.url + "/big.bin", BIG), spec("small.tsv", server.url + "/small.tsv", SMALL)]
    old = os.umask(0o022)
    try:
        out = fetch(specs, tmp_path)
    finally:
        os.umask(old)
    assert [o.status for o in out] == ["fetched", "fetched"]
    assert (tmp_path / "a" / "big.bin").read_bytes() == BIG and (tmp_path / "small.tsv").read_bytes() == SMALL
    assert stat.S_IMODE((tmp_path / "small.tsv").stat().st_mode) == 0o644
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["a/big.bin"]["sha256"] == sha(BIG) and manifest["a/big.bin"]["size"] == len(BIG)
    n = len(server.requests)
    assert [o.status for o in fetch(specs, tmp_path)] == ["present", "present"]
    assert len(server.requests) == n  # nothing downloaded again


def test_dropped_connection_resumes_with_range(tmp_path, server):
    specs = [spec("big.bin", server.url + "/big.bin", BIG)]
    server.cut_after["/big.bin"] = 30_000
    lines: list[str] = []
    first = fetch(specs, tmp_path, log=lines.append)
    assert first[0].status == "failed" and len(lines) == 1 and "\n" not in lines[0]
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == 30_000 and not (tmp_path / "big.bin").exists()
    second = fetch(specs, tmp_path)
    assert second[0].status == "fetched" and (tmp_path / "big.bin").read_bytes() == BIG and not part.exists()
    assert server.requests[-1] == ("/big.bin", "bytes=30000-")


def test_truncated_part_file_is_continued(tmp_path, server):
    (tmp_path / "big.bin.part").write_bytes(BIG[:12345])
    out = fetch([spec("big.bin", server.url + "/big.bin", BIG)], tmp_path)
    assert out[0].status == "fetched" and (tmp_path / "big.bin").read_bytes() == BIG
    assert server.requests == [("/big.bin", "bytes=12345-")]


def test_bad_sha256_is_one_line_and_nothing_kept(tmp_path, server):
    lines: list[str] = []
    out = fetch([spec("small.tsv", server.url + "/small.tsv", SMALL + b"x")], tmp_path, log=lines.append)
    assert out[0].status == "failed" and "sha256 mismatch" in out[0].detail
    assert len(lines) == 1 and "small.tsv" in lines[0] and "not kept" in lines[0]
    assert not (tmp_path / "small.tsv").exists() and not (tmp_path / "small.tsv.part").exists()


def test_md5_from_a_zenodo_style_record(tmp_path, server):
    md5 = hashlib.md5(SMALL).hexdigest()
    server.files["/api/records/1"] = json.dumps({"files": [{"key": "small.tsv", "checksum": f"md5:{md5}"}]}).encode()
    good = spec("t/small.tsv", server.url + "/small.tsv", None, md5_from=server.url + "/api/records/1")
    assert fetch([good], tmp_path)[0].detail.startswith("md5")
    server.files["/api/records/2"] = json.dumps({"files": [{"key": "small.tsv", "checksum": "md5:00"}]}).encode()
    bad = spec("u/small.tsv", server.url + "/small.tsv", None, md5_from=server.url + "/api/records/2")
    out = fetch([bad], tmp_path, log=lambda _: None)
    assert out[0].status == "failed" and "md5 mismatch" in out[0].detail and not (tmp_path / "u/small.tsv").exists()


def test_prompt_files_are_cut_from_the_python_source(tmp_path, server):
    long_text = "Role-play.\nScore: {power_score}\n{input_text}"
    judge_text = 'Q: "%s"\nA: "%s"'
    assert extract_constant(SOURCE, Extract("x.py", "LONG")) == long_text
    assert extract_constant(SOURCE, Extract("x.py", "judge_template", "judge")) == judge_text
    specs = [spec("src/prompts.py", server.url + "/src/prompts.py", None, optional=True),
             spec("p/long.txt", None, long_text.encode(), extract=Extract("src/prompts.py", "LONG")),
             spec("p/judge.txt", None, judge_text.encode(), extract=Extract("src/prompts.py", "judge_template", "judge"))]
    out = {o.path: o.status for o in fetch(specs, tmp_path)}
    assert out == {"src/prompts.py": "fetched", "p/long.txt": "derived", "p/judge.txt": "derived"}
    assert (tmp_path / "p/long.txt").read_bytes() == long_text.encode()  # no trailing newline


def test_mirror_folder_copies_converts_known_copies_and_reports_missing(tmp_path):
    mirror, dest = tmp_path / "mirror", tmp_path / "dest"
    (mirror / "p").mkdir(parents=True)
    (mirror / "small.tsv").write_bytes(SMALL)
    escaped = b'Q: \\"%s\\"'
    (mirror / "p" / "judge.txt").write_bytes(escaped)
    specs = [spec("small.tsv", "http://127.0.0.1:9/never", SMALL),
             spec("p/judge.txt", None, b'Q: "%s"', alternates={sha(escaped): "unescape-quotes"}),
             spec("gone.txt", "http://127.0.0.1:9/never", b"gone")]
    lines: list[str] = []
    out = {o.path: o for o in fetch(specs, dest, mirror=str(mirror), log=lines.append)}
    assert out["small.tsv"].status == "copied" and (dest / "small.tsv").read_bytes() == SMALL
    assert out["p/judge.txt"].status == "copied, unescape-quotes"
    assert (dest / "p/judge.txt").read_bytes() == b'Q: "%s"'
    assert out["gone.txt"].status == "failed" and len(lines) == 1 and "not in the mirror" in lines[0]


def test_cli_fetches_from_an_http_mirror_and_fails_in_one_line(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(datafetch, "STUDY_FILES", (FileSpec("big.bin", None, sha(BIG), len(BIG), "original", "t", "t"),))
    assert main(["data", "--dest", str(tmp_path / "d"), "--mirror", server.url, "--groups", "[original]"]) == 0
    assert (tmp_path / "d" / "big.bin").read_bytes() == BIG
    capsys.readouterr()
    monkeypatch.setattr(datafetch, "STUDY_FILES", (FileSpec("nope.bin", None, sha(b"x"), 1, "original", "t", "t"),))
    assert main(["data", "--dest", str(tmp_path / "d"), "--mirror", server.url, "--groups", "[original]"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("valueharms: error")]
    assert len(err) == 1 and "1 of 1 files failed" in err[0]


@pytest.mark.parametrize("argv", [["--groups", "[]"], ["--groups", "[nonsense]"], ["--dest", "FILE"]])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv):
    (tmp_path / "FILE").write_text("x")
    argv = [a.replace("FILE", str(tmp_path / "FILE")) for a in argv]
    assert main(["data", *argv] + ([] if "--dest" in argv else ["--dest", str(tmp_path / "d")])) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_manifest_is_pinned_and_every_needed_file_is_checked():
    paths = [s.path for s in STUDY_FILES]
    assert len(paths) == len(set(paths))
    for s in STUDY_FILES:
        if s.url and "Unintended-Harms-LLM" in s.url:
            assert f"/{STUDY_COMMIT}/" in s.url and s.url.startswith("https://raw.githubusercontent.com/")
        assert s.optional or s.sha256 or s.md5_from, s.path
    needed = {"original/prompts/hexphi_judge_template.txt", "original/prompts/beavertails_judge_template.txt",
              "original/prompts/icl_long_prompt_completion.txt", "original/prompts/icl_long_prompt_instruction.txt",
              "original/real_toxic_prompts.csv", "original/extreme_distributions.csv",
              "original/argument_generation/value_split/train.csv", "original/target_distribution_names.txt"}
    assert needed <= set(paths)


def test_study_files_mirror_from_a_local_copy(tmp_path, study_data, capsys):
    """With the study's files beside the repo: every file verifies (prompt files converted from the older copy)."""
    result = datafetch.data(dest=str(tmp_path), mirror=str(study_data), groups=["original", "holistic_bias"])
    assert {v.split(",")[0] for k, v in result.items() if not k.startswith("sources/")} == {"copied"}
    text = (tmp_path / "original/prompts/icl_long_prompt_instruction.txt").read_text(encoding="utf-8")
    assert text.endswith("QUESTION: {input_text}\nANSWER: ")
    assert (tmp_path / "original/prompts/hexphi_judge_template.txt").read_text().count('"%s"') == 2


def test_hexphi_uses_the_hub_client_and_explains_a_refusal(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    calls = []

    def fake_download(repo_id, **kw):
        calls.append((repo_id, kw))
        (Path(kw["local_dir"]) / "category_1.csv").parent.mkdir(parents=True, exist_ok=True)
        (Path(kw["local_dir"]) / "category_1.csv").write_text("a prompt\n")
        return kw["local_dir"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert datafetch.fetch_hexphi(tmp_path) == str(tmp_path / "hexphi")
    assert calls == [("LLM-Tuning-Safety/HEx-PHI", {"repo_type": "dataset", "local_dir": str(tmp_path / "hexphi"),
                                                    "allow_patterns": ["category_*.csv"]})]

    def refused(repo_id, **kw):
        import httpx

        response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/x"))
        raise HfHubHTTPError("403 Client Error: gated repo\nyou need access", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refused)
    with pytest.raises(InputError) as err:
        datafetch.fetch_hexphi(tmp_path)
    assert "gated" in str(err.value) and "\n" not in str(err.value)
