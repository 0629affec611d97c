"""``valueharms data``: fetch the study's public inputs (see :mod:`valueharms.datasources`) into ``data/``.

Every file is checked (sha256, or Zenodo's md5 where no sha256 is pinned) before it takes its final name; a download
continues from its ``.part`` file with an HTTP Range request; files already present and correct are skipped; a bad
file is deleted, never kept. ``--mirror`` copies from a local folder (or an http(s) URL) laid out like ``data/``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from valueharms.datasources import (DEFAULT_DEST, GROUPS, HEXPHI_HINT, HEXPHI_REPO, STUDY_FILES, TRANSFORMS,
                                    Extract, FileSpec)
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, current_umask, sha256_file

MANIFEST = "MANIFEST.json"


class FetchError(Exception):
    """One file could not be fetched or verified (reported on one line; the other files go on)."""


@dataclass
class Outcome:
    path: str
    status: str  # present | fetched | copied | derived | skipped | failed
    detail: str = ""


def _digest(path: Path, algo: str) -> str:
    if algo == "sha256":
        return sha256_file(path)
    h = hashlib.new(algo)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _publish(tmp: Path, final: Path) -> None:
    """Give the verified file the mode a plain ``open`` would (0666 minus umask) and its final name."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, final)


# ------------------------------------------------------------------------------------------------------ verification
def verify(spec: FileSpec, path: Path, md5: str | None = None) -> None:
    """Raise :class:`FetchError` unless ``path`` is the expected file (sha256, else the md5 given)."""
    if spec.sha256 is not None:
        got = sha256_file(path)
        if got != spec.sha256:
            raise FetchError(f"sha256 mismatch: expected {spec.sha256[:12]}..., got {got[:12]}...")
    elif md5 is not None:
        got = _digest(path, "md5")
        if got != md5:
            raise FetchError(f"md5 mismatch with the Zenodo record: expected {md5}, got {got}")


def is_present(spec: FileSpec, dest: Path, manifest: dict[str, Any]) -> bool:
    """True when the file is there and still what was verified (sha256, or the digest recorded at fetch time)."""
    path = dest / spec.path
    if not path.is_file():
        return False
    expected = spec.sha256 or (manifest.get(spec.path) or {}).get("sha256")
    return expected is not None and sha256_file(path) == expected


# ---------------------------------------------------------------------------------------------------------- download
def download(client: Any, url: str, final: Path, label: str) -> Path:
    """Stream ``url`` into ``final.part``, continuing an earlier partial download with ``Range``; returns the part."""
    from valueharms.progress import progress

    part = final.with_name(final.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    # identity encoding: Range offsets then count the bytes we store (a gzip response would count encoded bytes)
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    with client.stream("GET", url, headers=headers, follow_redirects=True) as resp:
        if resp.status_code == 416 and have:  # nothing left to send: the part is complete
            return part
        if resp.status_code not in (200, 206):
            raise FetchError(f"HTTP {resp.status_code} from {url}")
        if resp.status_code == 200:
            have = 0  # the server ignored the range: start over
        length = resp.headers.get("content-length")
        total = have + int(length) if length and length.isdigit() else None
        with part.open("ab" if have else "wb") as fh, progress(total=total, initial=have, unit="B", unit_scale=True,
                                                          desc=label, leave=False, file=sys.stderr) as bar:
            for chunk in resp.iter_raw():  # as received: bytes that arrived before a dropped connection are kept
                fh.write(chunk)
                bar.update(len(chunk))
    return part


def zenodo_md5s(client: Any, api_url: str, cache: dict[str, dict[str, str]]) -> dict[str, str]:
    """``file name -> md5`` from a Zenodo record's API JSON (fetched once per record)."""
    if api_url not in cache:
        resp = client.get(api_url, follow_redirects=True)
        if resp.status_code != 200:
            raise FetchError(f"HTTP {resp.status_code} from {api_url} (needed to check the file)")
        try:
            files = resp.json().get("files") or []
            cache[api_url] = {f["key"]: f["checksum"].split(":", 1)[1] for f in files
                              if str(f.get("checksum", "")).startswith("md5:")}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise FetchError(f"unreadable record listing at {api_url}") from None
    return cache[api_url]


# ----------------------------------------------------------------------------------------------------------- extract
def extract_constant(source: str, extract: Extract) -> str:
    """The string assigned to ``extract.name`` (inside ``extract.function`` when given), read with ``ast``."""
    tree = ast.parse(source)
    scopes: list[ast.AST] = [tree] if extract.function is None else [
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == extract.function]
    for scope in scopes:
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == extract.name
                                                    for t in node.targets):
                value = node.value
                strip = isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                    and value.func.attr == "strip" and not value.args
                if strip:
                    value = value.func.value  # type: ignore[union-attr]
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value.strip() if strip else value.value
    where = f" in {extract.function}()" if extract.function else ""
    raise FetchError(f"no string constant {extract.name}{where} in {extract.source}")


def derive(spec: FileSpec, dest: Path) -> None:
    """Cut ``spec`` from its (already fetched) Python source and verify it."""
    assert spec.extract is not None
    src = dest / spec.extract.source
    if not src.is_file():
        raise FetchError(f"needs {spec.extract.source}, which was not fetched")
    text = extract_constant(src.read_text(encoding="utf-8"), spec.extract)
    final = dest / spec.path
    tmp = final.with_name(final.name + ".part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(text.encode("utf-8"))
    _keep_if_valid(spec, tmp, final)


def _keep_if_valid(spec: FileSpec, tmp: Path, final: Path, md5: str | None = None) -> None:
    try:
        verify(spec, tmp, md5)
    except FetchError:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, final)


# ------------------------------------------------------------------------------------------------------------ mirror
def copy_from_mirror(spec: FileSpec, mirror: Path, dest: Path) -> str:
    """Copy one file from a local folder laid out like ``data/``; a known equivalent copy is converted."""
    src = mirror / spec.path
    final = dest / spec.path
    if not src.is_file():
        if spec.extract is not None and (mirror / spec.extract.source).is_file():
            _stage_source(spec, mirror, dest)
            derive(spec, dest)
            return "derived"
        raise FetchError(f"not in the mirror ({src})")
    tmp = final.with_name(final.name + ".part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, tmp)
    transform = spec.alternates.get(sha256_file(tmp))
    if transform is not None:
        tmp.write_bytes(TRANSFORMS[transform](tmp.read_bytes()))
    _keep_if_valid(spec, tmp, final)
    return f"copied, {transform}" if transform else "copied"


def _stage_source(spec: FileSpec, mirror: Path, dest: Path) -> None:
    assert spec.extract is not None
    target = dest / spec.extract.source
    if target.resolve() != (mirror / spec.extract.source).resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / spec.extract.source, target)


# ------------------------------------------------------------------------------------------------------------ driver
def fetch_one(spec: FileSpec, dest: Path, *, client: Any, mirror: Path | None, url_base: str | None,
              md5_cache: dict[str, dict[str, str]]) -> tuple[str, dict[str, Any]]:
    """Bring one file into ``dest``; returns (status, manifest entry)."""
    if mirror is not None:
        status = copy_from_mirror(spec, mirror, dest)
    elif spec.extract is not None and spec.url is None and url_base is None:
        derive(spec, dest)
        status = "derived"
    else:
        url = f"{url_base.rstrip('/')}/{spec.path}" if url_base else spec.url
        assert url is not None
        md5 = None
        if spec.sha256 is None and spec.md5_from and not url_base:
            md5 = zenodo_md5s(client, spec.md5_from, md5_cache).get(Path(spec.path).name)
            if md5 is None:
                raise FetchError(f"{Path(spec.path).name} is not listed in {spec.md5_from}")
        final = dest / spec.path
        try:
            part = download(client, url, final, spec.path)
        except FetchError:
            if url_base and spec.extract is not None:  # an HTTP mirror may hold only the Python source
                derive(spec, dest)
                return "derived", _entry(spec, dest, "sha256")
            raise
        _keep_if_valid(spec, part, final, md5)
        status = "fetched"
    how = "sha256" if spec.sha256 else ("md5 (Zenodo record)" if spec.md5_from and mirror is None and not url_base
                                        else "unverified: digest recorded")
    return status, _entry(spec, dest, how)


def _entry(spec: FileSpec, dest: Path, how: str) -> dict[str, Any]:
    path = dest / spec.path
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "url": spec.url, "verified": how,
            "license": spec.license, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S")}


def fetch(specs: Sequence[FileSpec], dest: str | Path, *, mirror: str | None = None, client: Any = None,
          timeout: float = 60.0, log: Callable[[str], None] | None = None) -> list[Outcome]:
    """Fetch ``specs`` (sources before the files cut from them) into ``dest``; never raises for one bad file."""
    import httpx

    log = log or (lambda line: print(line, file=sys.stderr))
    dest = Path(dest)
    local_mirror = Path(mirror) if mirror and not mirror.startswith(("http://", "https://")) else None
    url_base = mirror if mirror and local_mirror is None else None
    if local_mirror is not None and not local_mirror.is_dir():
        raise InputError(local_mirror, None, "mirror", "mirror folder not found")
    manifest_path = dest / MANIFEST
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    own_client = client is None
    client = client or httpx.Client(timeout=timeout, headers={"User-Agent": "value-harms data"})
    outcomes: list[Outcome] = []
    md5_cache: dict[str, dict[str, str]] = {}
    ordered = sorted(specs, key=lambda s: s.extract is not None)  # sources first
    try:
        for spec in ordered:
            if is_present(spec, dest, manifest):
                outcomes.append(Outcome(spec.path, "present"))
                continue
            try:
                status, entry = fetch_one(spec, dest, client=client, mirror=local_mirror, url_base=url_base,
                                          md5_cache=md5_cache)
            except (FetchError, httpx.HTTPError, OSError) as err:
                detail = " ".join((str(err) or type(err).__name__).split())
                if spec.optional:
                    outcomes.append(Outcome(spec.path, "skipped", f"{detail}; only needed to cut the prompt files"))
                    continue
                log(f"valueharms data: {spec.path}: {detail}; file not kept")
                outcomes.append(Outcome(spec.path, "failed", detail))
                continue
            manifest[spec.path] = entry
            atomic_write_json(manifest_path, manifest)
            _, _, transform = status.partition(", ")
            outcomes.append(Outcome(spec.path, status, entry["verified"] + (f", from an equivalent copy: {transform}"
                                                                               if transform else "")))
    finally:
        if own_client:
            client.close()
    return outcomes


def fetch_hexphi(dest: Path) -> str:
    """Download the gated HEx-PHI files with the user's Hugging Face token (access must have been granted)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        snapshot_download(HEXPHI_REPO, repo_type="dataset", local_dir=str(dest / "hexphi"),
                          allow_patterns=["category_*.csv"])
    except HfHubHTTPError as err:
        raise InputError(None, None, "hexphi", f"{' '.join(str(err).split())[:200]} -- "
                         + HEXPHI_HINT.format(dest=dest)) from None
    return str(dest / "hexphi")


def data(dest: str = DEFAULT_DEST, mirror: str | None = None, groups: list[str] | None = None,
         hexphi: bool = False, timeout: float = 60.0) -> dict[str, str]:
    """Fetch the study's public inputs into ``dest`` (verified, resumable; present files are skipped).

    Args:
        dest: target folder (``data`` by default: the study config and ``prepare`` defaults read from there).
        mirror: copy from this local folder, or download from this http(s) URL, laid out like ``dest``.
        groups: subset of: original (the study's files), holistic_bias, touche23_valueeval. Default: all.
        hexphi: also download the gated HEx-PHI files with your Hugging Face token (access granted first).
        timeout: seconds per HTTP request.
    """
    wanted = list(GROUPS) if groups is None else list(groups)
    if not wanted:
        raise InputError(None, None, "groups", "empty list of groups")
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        raise InputError(None, None, "groups", f"unknown group {unknown[0]!r} (known: {', '.join(GROUPS)})")
    dest_path = Path(dest)
    if dest_path.exists() and not dest_path.is_dir():
        raise InputError(dest_path, None, "dest", "exists and is not a folder")
    specs = [s for s in STUDY_FILES if s.group in wanted]
    outcomes = fetch(specs, dest_path, mirror=mirror, timeout=timeout)
    for o in outcomes:
        print(f"{o.status.split(',')[0]:<8} {o.path}" + (f"  [{o.detail}]" if o.detail and o.status != "failed" else ""))
    counts = {k: sum(o.status.split(",")[0] == k for o in outcomes) for k in ("present", "fetched", "copied",
                                                                             "derived", "skipped", "failed")}
    print("data: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" (in {dest_path})")
    if hexphi:
        print(f"  hexphi  {fetch_hexphi(dest_path)}")
    elif not (dest_path / "hexphi").is_dir():
        print(HEXPHI_HINT.format(dest=dest_path), file=sys.stderr)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise InputError(dest_path, None, None, f"{len(failed)} of {len(outcomes)} files failed ({failed[0].path}: "
                         f"{failed[0].detail}); rerun the same command to resume")
    return {o.path: o.status for o in outcomes}
