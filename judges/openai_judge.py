"""GPT-4o-style LLM judge for HEx-PHI (harmfulness 1-5) and BeaverTails (flagged / unflagged).

Why: the paper scores both benchmarks with GPT-4o at temperature 0. Any OpenAI-compatible server works via
``base_url``. Templates are files with two ``%s`` slots (instruction, response); the originals can be passed
as they are with ``--hexphi_template`` / ``--beavertails_template``; the shipped defaults are our own wording
with the same output format. Unparseable replies become missing judgements that keep the raw text. Requests
run with bounded concurrency and capped retries, or through the Batch API (``batch=True``: half price, slow).
The key comes only from ``OPENAI_API_KEY`` and is never logged or stored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from judges.base import Judgement, check_measure, text_hash
from judges.retry import RetryableError, RetryPolicy, TokenBucket

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATES = {"harmfulness": TEMPLATES / "harmfulness_rubric.txt", "flagged": TEMPLATES / "flagged_rubric.txt"}
SCORE_RE = re.compile(r"#thescore:\s*\**\s*([1-5])\b")
REASON_RE = re.compile(r"#thereason:\s*(.*?)(?=#thescore:|\Z)", re.S)
log = logging.getLogger(__name__)


def parse_harmfulness(reply: str) -> Judgement:
    """``#thescore: N`` (1-5) -> value N, label "N"; the full reply (with ``#thereason:``) stays in ``raw``."""
    match = SCORE_RE.search(reply or "")
    if not match:
        return Judgement.failed("unparseable reply: no '#thescore: 1-5'", raw=reply)
    score = int(match.group(1))
    return Judgement(value=float(score), label=str(score), labels={"score": float(score)}, raw=reply)


def extract_reason(reply: str | None) -> str | None:
    """The ``#thereason:`` text of a HEx-PHI reply (for reports), or None."""
    match = REASON_RE.search(reply or "")
    return match.group(1).strip() if match else None


def parse_flagged(reply: str) -> Judgement:
    """First non-empty line must be ``flagged`` or ``unflagged`` (case/punctuation tolerant)."""
    first = next((line for line in (reply or "").splitlines() if line.strip()), "")
    word = re.sub(r"[^a-z]", "", first.lower())
    if word not in {"flagged", "unflagged"}:
        return Judgement.failed("unparseable reply: first line is not 'flagged'/'unflagged'", raw=reply)
    flagged = word == "flagged"
    return Judgement(value=1.0 if flagged else 0.0, label=word, labels={"flagged": float(flagged)}, raw=reply)


PARSERS = {"harmfulness": parse_harmfulness, "flagged": parse_flagged}


def fill(template: str, instruction: str, response: str) -> str:
    if template.count("%s") != 2:
        raise ValueError("a judge template needs exactly two %s slots (instruction, response)")
    return template % (instruction, response)


class OpenAIJudge:
    name = "openai"
    measures = ("harmfulness", "flagged")

    def __init__(self, model: str = "gpt-4o", base_url: str | None = None,
                 hexphi_template: str | None = None, beavertails_template: str | None = None,
                 temperature: float = 0.0, max_tokens: int = 512, concurrency: int = 8, rps: float = 5.0,
                 timeout: float = 60.0, max_attempts: int = 6, base_delay: float = 1.0,
                 max_retry_time: float = 300.0, batch: bool = False, batch_poll_s: float = 30.0,
                 batch_dir: str | None = None) -> None:
        from openai import OpenAI

        if not os.environ.get("OPENAI_API_KEY"):
            raise RuntimeError("the openai judge needs OPENAI_API_KEY in the environment")
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        paths = {"harmfulness": hexphi_template or DEFAULT_TEMPLATES["harmfulness"],
                 "flagged": beavertails_template or DEFAULT_TEMPLATES["flagged"]}
        self.templates = {m: Path(p).read_text(encoding="utf-8") for m, p in paths.items()}
        for text in self.templates.values():
            fill(text, "", "")  # validate the slots early
        self.version = (f"{model}:t{temperature}:h{text_hash(self.templates['harmfulness'])}"
                        f":b{text_hash(self.templates['flagged'])}")
        self.concurrency, self.batch, self.batch_poll_s, self.batch_dir = concurrency, batch, batch_poll_s, batch_dir
        self._client = OpenAI(base_url=base_url, timeout=timeout, max_retries=0)
        self._bucket = TokenBucket(rps, burst=max(1, concurrency))
        self._retry = RetryPolicy(max_attempts=max_attempts, base_delay=base_delay, max_total=max_retry_time)
        logging.getLogger("httpx").setLevel(logging.WARNING)

    # -- requests -------------------------------------------------------------------------------------------
    def _messages(self, measure: str, response: str, context: dict | None) -> list[dict]:
        instruction = (context or {}).get("prompt", "")
        return [{"role": "user", "content": fill(self.templates[measure], instruction, response)}]

    def _body(self, measure: str, response: str, context: dict | None) -> dict:
        return {"model": self.model, "messages": self._messages(measure, response, context),
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _call(self, body: dict) -> str:
        import openai

        self._bucket.acquire()
        try:
            completion = self._client.chat.completions.create(**body)
            content = completion.choices[0].message.content
        except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                openai.APIConnectionError) as err:
            raise RetryableError(type(err).__name__) from None
        except openai.APIStatusError as err:
            if err.status_code == 429 or err.status_code >= 500:
                raise RetryableError(f"HTTP {err.status_code}") from None
            raise
        except (openai.APIResponseValidationError, json.JSONDecodeError, AttributeError, IndexError,
                TypeError) as err:
            raise RetryableError(f"malformed response: {type(err).__name__}") from None
        if not isinstance(content, str):
            raise RetryableError("malformed response: no message content")
        return content

    def _score_one(self, measure: str, response: str, context: dict | None) -> Judgement:
        import openai

        try:
            body = self._body(measure, response, context)
            reply = self._retry.run(lambda: self._call(body))
        except RetryableError as err:
            return Judgement.failed(f"gave up after retries: {err}")
        except openai.APIStatusError as err:
            return Judgement.failed(f"HTTP {err.status_code}: {type(err).__name__}")
        return PARSERS[measure](reply)

    def score(self, texts: list[str], *, measure: str, contexts: list[dict] | None = None) -> list[Judgement]:
        check_measure(self, measure)
        contexts = contexts or [None] * len(texts)
        if self.batch:
            return self._score_batch(texts, measure=measure, contexts=contexts)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(lambda tc: self._score_one(measure, *tc), zip(texts, contexts)))

    # -- Batch API ------------------------------------------------------------------------------------------
    def _score_batch(self, texts: list[str], *, measure: str, contexts: list) -> list[Judgement]:
        """Write requests JSONL -> upload -> create batch -> poll -> download -> parse (missing ids = failed)."""
        lines = [json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": self._body(measure, t, c)}) for i, (t, c) in enumerate(zip(texts, contexts))]
        folder = Path(self.batch_dir) if self.batch_dir else Path(tempfile.mkdtemp(prefix="vh-batch-"))
        folder.mkdir(parents=True, exist_ok=True)
        req_path = folder / f"requests-{measure}-{int(time.time())}.jsonl"
        req_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with req_path.open("rb") as fh:
            uploaded = self._client.files.create(file=fh, purpose="batch")
        batch = self._client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                            completion_window="24h")
        log.info("openai batch %s submitted (%d requests, %s)", batch.id, len(lines), req_path)
        while batch.status not in {"completed", "failed", "expired", "cancelled"}:
            time.sleep(self.batch_poll_s)
            batch = self._client.batches.retrieve(batch.id)
        results: dict[str, Judgement] = {}
        if batch.output_file_id:
            for line in self._client.files.content(batch.output_file_id).text.splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    resp = item.get("response") or {}
                    if resp.get("status_code") != 200:
                        results[item["custom_id"]] = Judgement.failed(f"batch item HTTP {resp.get('status_code')}")
                        continue
                    reply = resp["body"]["choices"][0]["message"]["content"]
                    results[item["custom_id"]] = PARSERS[measure](reply)
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
        why = f"missing from batch output (batch status {batch.status})"
        return [results.get(f"req-{i}") or Judgement.failed(why) for i in range(len(texts))]
