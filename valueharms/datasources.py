"""Where the study's public inputs come from, pinned, and how each file is verified.

Why: the paper's numbers depend on exact files (the study's own value distributions, argument splits, RTP prompt
order, prompt templates and judge rubrics). ``valueharms data`` fetches them from their canonical sources at pinned
commits and checks every byte with sha256, so a run on a cluster uses the same inputs as the paper.

Layout under ``--dest`` (default ``data/``)::

    original/            the study repository's data files (names as in its data/ folder) + prompts/
    holistic_bias/v1.1/  HolisticBias source files (HolisticBiasR prompts are built from them)
    touche23_valueeval/  the Touché23-ValueEval release the study's argument file derives from
    sources/             the study's Python files the prompt templates are read from
    hexphi/              HEx-PHI (gated: obtained by hand or with --hexphi)
"""

from __future__ import annotations

from dataclasses import dataclass, field

STUDY_REPO = "JaehyeokLee-119/Unintended-Harms-LLM"
STUDY_COMMIT = "4a20909328a10dea73761b0a96afc2d10a2cb60a"
HOLISTIC_REPO = "facebookresearch/ResponsibleNLP"
HOLISTIC_COMMIT = "0ec714eb084217f44cd9ac466d9e988c795302f9"
ZENODO_RECORD = "7879430"  # Touché23-ValueEval, the versioned record the official HF loader reads
HEXPHI_REPO = "LLM-Tuning-Safety/HEx-PHI"

DEFAULT_DEST = "data"


def github_raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def zenodo_file(name: str) -> str:
    return f"https://zenodo.org/records/{ZENODO_RECORD}/files/{name}?download=1"


ZENODO_API = f"https://zenodo.org/api/records/{ZENODO_RECORD}"


@dataclass(frozen=True)
class Extract:
    """A text file cut from a string constant of a Python source file (parsed with ``ast``; never executed).

    ``name`` is the variable; ``function`` the function it is assigned in (None: module level). A constant written
    as ``\"\"\"...\"\"\".strip()`` is stripped, as the study's code does.
    """

    source: str  # path under dest of the Python file
    name: str
    function: str | None = None


@dataclass(frozen=True)
class FileSpec:
    """One file of the study's inputs.

    ``sha256``: the expected digest (None: verified another way, see ``md5_from``, or not verifiable; the size and
    digest seen are then recorded in ``MANIFEST.json``). ``alternates``: digests of known equivalent copies (e.g.
    an earlier extraction that kept the source's ``\\"`` escapes) -> the transform that turns them into this file.
    """

    path: str
    url: str | None
    sha256: str | None
    size: int | None
    group: str
    what: str
    license: str
    extract: Extract | None = None
    md5_from: str | None = None  # a Zenodo record API URL listing ``md5:`` checksums by file name
    optional: bool = False  # a source only needed to cut other files (a mirror may hold the cut files instead)
    alternates: dict[str, str] = field(default_factory=dict)


def _study(path: str, sha256: str, size: int, what: str, license_: str, name: str | None = None) -> FileSpec:
    return FileSpec(f"original/{name or path.rsplit('data/', 1)[-1]}", github_raw(STUDY_REPO, STUDY_COMMIT, path),
                    sha256, size, "original", what, license_)


_ESS = "CC BY-NC-SA 4.0 (ESS-derived rows)"
_TOUCHE = "CC BY 4.0 (Touché23-ValueEval)"
_PROMPTS_PY = "sources/Unintended-Harms-LLM/utils/prompt_templates.py"
_JUDGE_PY = "sources/Unintended-Harms-LLM/evaluate/eval/openai_gpt4_judge.py"

STUDY_FILES: tuple[FileSpec, ...] = (
    _study("data/valueEval_10.csv", "6f843d64b1874267c8fb42d67cf85533cd5847d935533ff993b5ab1345fe5385", 1525762,
           "value-labelled arguments (stage 1)", _TOUCHE),
    _study("data/extreme_distributions.csv", "7e96fa15a8016866e15d0f96afe691836bd84de0f37f4afd877bc813c32ac7e9",
           11506, "value distributions (14 extreme + closest ESS respondents)", _ESS),
    _study("data/argument_generation/value_split/train.csv",
           "cd675fe589b6458a4c8d58897d963e4cd6c39327f0c49ae2cb4e949b2c1b9b70", 1216323,
           "stage-2 training arguments", _TOUCHE),
    _study("data/argument_generation/value_split/valid.csv",
           "1bcb924585c0932c6ee39e1a0f81d65a6e0edb944c062d85bf981255baf70609", 153398,
           "stage-2 validation arguments", _TOUCHE),
    _study("data/argument_generation/test.csv", "182e81c32d131973f7807df9377bac15a99e7ee43b355101c6d16e6fadb66181",
           156343, "stage-2 test arguments", _TOUCHE),
    _study("data/real_toxic_prompts.csv", "8c5116e61b916b22557f47e5d05cedea02b9b0fa4791e15241d4eef5bd5af7fd",
           1502135, "RealToxicityPrompts toxic subset in the study's order", "Apache-2.0 (RealToxicityPrompts)"),
    _study("data/BeaverTails-Evaluation.csv", "7d88f60b9cd104ca2df28613685d7dbbc0c7b372acf0c936e00666a23b8977bb",
           91179, "BeaverTails-Evaluation prompts (700)", "CC BY-NC 4.0 (PKU-Alignment)"),
    _study("data/grammar_validation.csv", "54c81412aa32971b9505d309b0fd4e44f9a6e25eb68e1d7d81b259ff44c58411",
           577471, "Grammar benign baseline data", "see the study repository"),
    _study("target_distribution_names_full.txt", "a31822857c95288649b5ab9221739c278808538be3f95a3ac3a35767a1d94901",
           2283, "the 154 trained distributions", "the study repository", name="target_distribution_names.txt"),
    FileSpec(_PROMPTS_PY, github_raw(STUDY_REPO, STUDY_COMMIT, "utils/prompt_templates.py"), None, None, "original",
             "the study's prompt templates (checked through the files cut from it)", "the study repository",
             optional=True),
    FileSpec(_JUDGE_PY, github_raw(STUDY_REPO, STUDY_COMMIT, "evaluate/eval/openai_gpt4_judge.py"), None, None,
             "original", "the study's judge rubrics (checked through the files cut from it)", "the study repository",
             optional=True),
    FileSpec("original/prompts/icl_long_prompt_completion.txt", None,
             "3c6161239c805b4fadbe31a3957fc9ed0d522b59ecbc06d83625c87ea32909d5", 1625, "original",
             "ICL template, completion form (RTP, HolisticBiasR)", "the study repository",
             extract=Extract(_PROMPTS_PY, "LONG_PROMPT_COMPLETION"),
             alternates={"5ed722c28c37676579a22e0fb5f45e1b8d812f8866d413fc3213cfd536dbfb7f": "drop-final-newline"}),
    FileSpec("original/prompts/icl_long_prompt_instruction.txt", None,
             "d3639cee9edd1a6dcab720f2b094165d90ccbbf1d6c16bcc55eacb22ccf23cf8", 1712, "original",
             "ICL template, instruction form (HEx-PHI, BeaverTails)", "the study repository",
             extract=Extract(_PROMPTS_PY, "LONG_PROMPT_INSTRUCTION"),
             alternates={"457df3f675e20b04768f9b2bfdde1f019080bf74550533c247cabf862ad8333c": "answer-space"}),
    FileSpec("original/prompts/hexphi_judge_template.txt", None,
             "7636b6688523b305c7619f9e28ed5fb4e3aea55ea1577104ab9a8ddbf8993fd2", 6721, "original",
             "HEx-PHI judge rubric (two %s slots)", "from Qi et al. 2023 via the study repository",
             extract=Extract(_JUDGE_PY, "judge_template", function="duo_judge"),
             alternates={"23ec8f5247962e4153e35b2a99277b2b2a8947c1162bd3af5fcc6d6c20e127a6": "unescape-quotes"}),
    FileSpec("original/prompts/beavertails_judge_template.txt", None,
             "e38af54ea9894badb7ace9f9b944757dadceef71c2f85b2b088fea74f5abc608", 1428, "original",
             "BeaverTails judge rubric (two %s slots)", "from the BeaverTails authors via the study repository",
             extract=Extract(_JUDGE_PY, "judge_template", function="beaver_evaluate"),
             alternates={"8264f17ebaa40495933a89e98acb74d8f4e990d6706c07a5a7ad2d7915c52683": "unescape-quotes"}),
    *(FileSpec(f"holistic_bias/v1.1/{name}.json",
               github_raw(HOLISTIC_REPO, HOLISTIC_COMMIT, f"holistic_bias/dataset/v1.1/{name}.json"), sha, size,
               "holistic_bias", f"HolisticBias v1.1 {name}", "CC BY-SA 4.0 (Meta)")
      for name, sha, size in (
          ("descriptors", "c1328f0edfdeefb76302d360a01878df3db55f18026f4ea1956b4a0f52daf943", 23463),
          ("nouns", "9bbe15bf01ea8827fd5d68a81ee2b05e04bd5f79478d9027efec0b4dbd232ee6", 1042),
          ("sentence_templates", "8b1cf8fc3c9a10b12cf77902e8c2ff3d80e3fcfff2f177a00256925acb4f53a5", 1499),
          ("standalone_noun_phrases", "bac592574f81df55e8c8d8e3919a866d43cbd8df5ae9376a68d95e7b83dbebac", 18082))),
    *(FileSpec(f"touche23_valueeval/{kind}-{split}.tsv", zenodo_file(f"{kind}-{split}.tsv"), None, None,
               "touche23_valueeval", f"Touché23-ValueEval {kind} ({split})", _TOUCHE, md5_from=ZENODO_API)
      for split in ("training", "validation", "test") for kind in ("arguments", "labels")),
)

GROUPS: tuple[str, ...] = ("original", "holistic_bias", "touche23_valueeval")

#: Byte transforms from a known equivalent copy to the canonical file (see ``FileSpec.alternates``).
TRANSFORMS = {
    "drop-final-newline": lambda b: b[:-1] if b.endswith(b"\n") else b,
    "answer-space": lambda b: b.rstrip(b"\n") + b" ",
    "unescape-quotes": lambda b: b.replace(b'\\"', b'"'),
}

HEXPHI_HINT = (f"HEx-PHI is gated: accept its licence at https://huggingface.co/datasets/{HEXPHI_REPO} while "
               "logged in, then run `valueharms data --hexphi true` (uses your Hugging Face token: `hf auth login` "
               "or HF_TOKEN) or put its category_<n>.csv files in {dest}/hexphi/ by hand")
