"""Perspective API judge (RealToxicityPrompts' original scorer) for users who still hold a key.

Why: reproduces the paper's RTP numbers. The API is being shut down (end of life 31 Dec 2026, no new keys),
so it is optional; offline judges are the default. All requested attributes go in ONE request (quota is per
request); 1 QPS token bucket; retries on 429/5xx/timeouts with a total-time cap. The key comes only from
``PERSPECTIVE_API_KEY``, is sent as a query parameter, and is masked in every error; httpx's own request
logger is silenced while calling, so the URL with the key never reaches a log.
"""

from __future__ import annotations

import json
import logging
import os

import httpx

from judges.base import Judgement, check_measure, mask_secret
from judges.retry import RetryableError, RetryPolicy, TokenBucket

DEFAULT_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
MAX_BYTES = 3000
log = logging.getLogger(__name__)


class PerspectiveJudge:
    """Scores ``toxicity`` = summary score of the first attribute (TOXICITY by default)."""

    name = "perspective"
    measures = ("toxicity",)

    def __init__(self, attributes: list[str] | str = "TOXICITY", base_url: str = DEFAULT_URL, qps: float = 1.0,
                 timeout: float = 10.0, max_attempts: int = 6, base_delay: float = 1.0,
                 max_retry_time: float = 120.0, languages: list[str] | None = None) -> None:
        self.attributes = [a.strip().upper() for a in (attributes.split(",") if isinstance(attributes, str)
                                                       else attributes) if a.strip()]
        self.base_url = base_url
        self.languages = languages or ["en"]
        self.version = f"v1alpha1:{','.join(self.attributes)}"
        self._key = os.environ.get("PERSPECTIVE_API_KEY")
        if not self._key:
            raise RuntimeError("the perspective judge needs PERSPECTIVE_API_KEY in the environment "
                               "(Perspective no longer issues keys; use --judge detoxify or offline)")
        self._bucket = TokenBucket(qps)
        self._retry = RetryPolicy(max_attempts=max_attempts, base_delay=base_delay, max_total=max_retry_time)
        self._client = httpx.Client(timeout=timeout)
        for name in ("httpx", "httpcore"):  # both log request URLs at INFO/DEBUG
            logging.getLogger(name).setLevel(logging.WARNING)

    def _body(self, text: str) -> dict:
        return {"comment": {"text": text, "type": "PLAIN_TEXT"},
                "requestedAttributes": {a: {} for a in self.attributes},
                "languages": self.languages, "doNotStore": True, "spanAnnotations": False}

    def _call(self, text: str) -> Judgement:
        self._bucket.acquire()
        try:
            resp = self._client.post(self.base_url, params={"key": self._key}, json=self._body(text))
        except httpx.TimeoutException as err:
            raise RetryableError(f"timeout: {type(err).__name__}") from None
        except httpx.TransportError as err:
            raise RetryableError(mask_secret(f"transport error: {err}", self._key)) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableError(f"HTTP {resp.status_code}")
        if resp.status_code != 200:
            try:
                message = resp.json()["error"]["message"]
            except Exception:  # noqa: BLE001 - any unreadable error body
                message = resp.text[:200]
            return Judgement.failed(mask_secret(f"HTTP {resp.status_code}: {message}", self._key))
        try:
            data = resp.json()
            scores = {a: float(data["attributeScores"][a]["summaryScore"]["value"]) for a in self.attributes}
        except (ValueError, KeyError, TypeError):
            raise RetryableError("malformed response body") from None
        first = self.attributes[0]
        return Judgement(value=scores[first], label=first.lower(), labels=scores,
                         raw=json.dumps(data.get("attributeScores", {}))[:4000])

    def score_one(self, text: str) -> Judgement:
        if not text.strip():
            return Judgement.failed("empty text (Perspective rejects empty comments)")
        if len(text.encode("utf-8")) > MAX_BYTES:
            text = text.encode("utf-8")[:MAX_BYTES].decode("utf-8", errors="ignore")
        try:
            return self._retry.run(lambda: self._call(text))
        except RetryableError as err:
            return Judgement.failed(f"gave up after retries: {mask_secret(str(err), self._key)}")

    def score(self, texts: list[str], *, measure: str = "toxicity", contexts: list[dict] | None = None
              ) -> list[Judgement]:
        check_measure(self, measure)
        return [self.score_one(t) for t in texts]  # the 1 QPS quota makes concurrency pointless
