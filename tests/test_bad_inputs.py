"""Every bad input to `valueharms prepare` ends in one line and exit 2 with nothing written; output files honour
the umask; names used as folder names cannot leave their parent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from valueharms.cli import main
from valueharms.errors import InputError
from valueharms.io import atomic_write_text
from valueharms.safenames import check_name
from valueharms.values import VALUES, load_distributions

REPO = Path(__file__).resolve().parents[1]
ARGS = REPO / "samples" / "valueeval" / "arguments.tsv"
HEADER = "Country\t" + "\t".join(VALUES)


def dist_file(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "d.tsv") -> Path:
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def row(name: str, sep: str = "\t") -> str:
    return sep.join([name] + ["6.0", "1.0", "2.0", "1.0", "3.5", "1.0", "1.0", "1.0", "1.0", "4.0"])


def run_prepare(tmp_path: Path, capsys, *extra: str, dists: Path | None = None, args: Path = ARGS) -> str:
    out = tmp_path / "out"
    argv = ["prepare", "--distributions", str(dists or dist_file(tmp_path, [row("a"), row("b")])),
            "--arguments", str(args), "--survey", "null", "--out", str(out), *extra]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("valueharms: error: "), err
    assert not out.exists() or not any(out.rglob("*")), "nothing may be written"
    return err[0]


def test_good_file_prepares(tmp_path, capsys):
    assert main(["prepare", "--distributions", str(dist_file(tmp_path, [row("a")])), "--arguments", str(ARGS),
                 "--survey", "null", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a" / "prepare_report.json").is_file()


def test_non_utf8_distribution_file_names_the_byte(tmp_path, capsys):
    path = tmp_path / "latin1.tsv"
    path.write_bytes((HEADER + "\n").encode() + row("Caf\xe9").encode("latin-1") + b"\n")
    offset = len((HEADER + "\n").encode()) + 3
    line = run_prepare(tmp_path, capsys, dists=path)
    assert f"byte offset {offset}" in line and "row 2" in line and str(path) in line


def test_non_utf8_argument_file_names_the_byte(tmp_path, capsys):
    data = ARGS.read_bytes()
    at = data.index(b"\n", data.index(b"\n") + 1) + 5  # inside the second data row
    bad = tmp_path / "args.tsv"
    bad.write_bytes(data[:at] + b"\x96" + data[at + 1:])
    line = run_prepare(tmp_path, capsys, args=bad)
    assert f"byte offset {at}" in line and "row 3" in line


@pytest.mark.parametrize("rows, needle", [
    ([row("a"), row("b"), row("a")], "duplicate distribution name 'a' (also row 2)"),
    ([row("a"), row("b") + "\t1.0\t1.0"], "has 13 cells, the header has 11"),
    ([row("a"), row("b").replace("\t4.0", "")], "has 10 cells"),
    ([row("../../escape")], "path separator"),
    ([row("/abs")], "path separator"),
    ([row("..")], "is not a name"),
    ([row("a").replace("6.0", "7.5")], "outside the 1-6 scale"),
    ([row("a").replace("6.0", "nan")], "outside the 1-6 scale"),
])
def test_bad_distribution_rows(tmp_path, capsys, rows, needle):
    assert needle in run_prepare(tmp_path, capsys, dists=dist_file(tmp_path, rows))


def test_thousands_of_extra_cells(tmp_path, capsys):
    line = run_prepare(tmp_path, capsys, dists=dist_file(tmp_path, [row("a") + "\t1" * 5000]))
    assert "5011 cells" in line and len(line) < 300


@pytest.mark.parametrize("extra, needle", [
    (["--names", "[]"], "empty list of distribution names"),
    (["--names", "[a, a]"], "listed twice"),
    (["--names", "[zzz]"], "no distribution named 'zzz'"),
    (["--threshold", "-5"], "1-6 value scale"),
    (["--threshold", "99"], "1-6 value scale"),
    (["--max_examples", "0"], "positive"),
])
def test_bad_options(tmp_path, capsys, extra, needle):
    assert needle in run_prepare(tmp_path, capsys, *extra)


def test_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("keep me")
    capsys.readouterr()
    code = main(["prepare", "--distributions", str(dist_file(tmp_path, [row("a")])), "--arguments", str(ARGS),
                 "--survey", "null", "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a folder" in err[0] and target.read_text() == "keep me"


def test_names_file_with_unsafe_or_no_names(tmp_path, capsys):
    bad = tmp_path / "names.txt"
    bad.write_text("a\n../b\n")
    assert "path separator" in run_prepare(tmp_path, capsys, "--names", f"[{bad}]")
    bad.write_text("# only a comment\n\n")
    assert "lists no distribution" in run_prepare(tmp_path, capsys, "--names", f"[{bad}]")


def test_delimiters_comma_accepted_semicolon_rejected(tmp_path, capsys):
    tab = load_distributions(dist_file(tmp_path, [row("a")]))
    comma = load_distributions(dist_file(tmp_path, [row("a", ",")], header=HEADER.replace("\t", ","), name="c.csv"))
    assert tab["a"].scores == comma["a"].scores
    semi = dist_file(tmp_path, [row("a", ";")], header=HEADER.replace("\t", ";"), name="s.csv")
    assert "tab- or comma-separated" in run_prepare(tmp_path, capsys, dists=semi)
    mixed = dist_file(tmp_path, [row("a"), row("b", ",")], name="m.tsv")  # a comma row in a tab file
    assert "has 1 cells" in run_prepare(tmp_path, capsys, dists=mixed)


@pytest.mark.parametrize("name", ["", " a", "a/b", "a\\b", "..", ".", "/x", "~x", "a\x00b", "x" * 201])
def test_check_name_rejects(name):
    with pytest.raises(InputError):
        check_name(name, what="adapter name")


def test_check_name_accepts_study_names():
    for name in ("close_Self-Transcendence_10", "Openness_to_Change", "resp_01", "vim:Pow".replace(":", "_")):
        assert check_name(name) == name


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = atomic_write_text(tmp_path / f"f{mask}.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
