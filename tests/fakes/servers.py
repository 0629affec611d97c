"""Fake Perspective and OpenAI servers on 127.0.0.1 that inject failures per text.

Each server has a ``plan``: text marker -> list of behaviours consumed one per request ("429", "500",
"timeout", "malformed", "400", "garbage" (valid body, unparseable judge reply), "retry-after:N" (429 with a
``Retry-After: N`` header)); when the list is empty the request succeeds. ``requests[marker]`` counts every
request, ``successes[marker]`` the successful ones, ``times[marker]`` when each request arrived.

``hold_after = N`` answers the first N successful requests and holds every later one until ``release`` is
set, then answers it 503: a client killed meanwhile has exactly its in-flight requests unanswered.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MARK = re.compile(r"txt\d+")


class _Base(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.plan: dict[str, list[str]] = {}
        self.requests: Counter = Counter()
        self.successes: Counter = Counter()
        self.seen_keys: list[str] = []
        self.times: dict[str, list[float]] = {}
        self.bodies: list[dict] = []
        self.sleep_s = 1.0
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_action(self, marker: str) -> str:
        with self.lock:
            self.requests[marker] += 1
            self.times.setdefault(marker, []).append(time.monotonic())
            todo = self.plan.get(marker) or []
            action = todo.pop(0) if todo else "ok"
            if action == "ok" and self.hold_after is not None and sum(self.successes.values()) >= self.hold_after:
                return "hold"
            return action

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Base

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: str | bytes, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _fail(self, action: str) -> bool:
        """Apply a failure action; True when the request was answered with a failure."""
        if action == "hold":
            self.server.release.wait(120)
            self._send(503, json.dumps({"error": {"code": 503, "message": "held"}}))
            return True
        if action.startswith("retry-after:"):
            data = json.dumps({"error": {"code": 429, "message": "slow down"}}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", action.split(":", 1)[1])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True
        if action == "timeout":
            time.sleep(self.server.sleep_s)
            self._send(200, "{}")
            return True
        if action in {"429", "500", "503"}:
            self._send(int(action), json.dumps({"error": {"code": int(action), "message": "try later"}}))
            return True
        if action == "malformed":
            self._send(200, '{"attributeScores": {"TOX')
            return True
        return False


def toxicity_of(text: str) -> float:
    """Deterministic fake score so tests can check which text got which value."""
    digits = MARK.search(text)
    return (int(digits.group(0)[3:]) % 10) / 10 if digits else 0.05


class PerspectiveHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        query = parse_qs(urlparse(self.path).query)
        self.server.seen_keys.extend(query.get("key", []))
        body = json.loads(self._body())
        text = body["comment"]["text"]
        marker = (MARK.search(text) or [text])[0]
        action = self.server.next_action(marker)
        if self._fail(action):
            return
        if action == "400":
            key = query.get("key", [""])[0]
            self._send(400, json.dumps({"error": {"code": 400, "message": f"API key not valid: {key}",
                                                  "status": "INVALID_ARGUMENT"}}))
            return
        scores = {a: {"summaryScore": {"value": toxicity_of(text), "type": "PROBABILITY"}}
                  for a in body["requestedAttributes"]}
        with self.server.lock:
            self.server.successes[marker] += 1
        self._send(200, json.dumps({"attributeScores": scores, "languages": ["en"]}))


def fake_reply(content: str, action: str) -> str:
    if action == "garbage":
        return "I would rather not grade this."
    score = toxicity_of(content) * 10
    if "#thescore" in content:
        return f"#thereason: the answer is fine.\n#thescore: {int(score) % 5 + 1}"
    return ("flagged" if int(score) % 2 else "unflagged") + "\nexplanation"


def completion(content: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


class OpenAIHandler(_Handler):
    batches: dict = {}

    def do_POST(self) -> None:  # noqa: N802
        raw = self._body()
        path = urlparse(self.path).path
        if path.endswith("/chat/completions"):
            body = json.loads(raw)
            self.server.bodies.append(body)
            content = body["messages"][0]["content"]
            marker = (MARK.search(content) or [content])[0]
            action = self.server.next_action(marker)
            if self._fail(action):
                return
            with self.server.lock:
                self.server.successes[marker] += 1
            self._send(200, json.dumps(completion(fake_reply(content, action))))
        elif path.endswith("/files"):
            lines = [ln for ln in raw.decode().splitlines() if ln.startswith('{"custom_id"')]
            self.server.uploaded = lines
            self._send(200, json.dumps({"id": "file-in", "object": "file", "bytes": len(raw), "created_at": 0,
                                        "filename": "requests.jsonl", "purpose": "batch", "status": "processed"}))
        elif path.endswith("/batches"):
            self.server.polls = 0
            self._send(200, json.dumps(self._batch("validating")))
        else:
            self._send(404, "{}")

    def _batch(self, status: str) -> dict:
        return {"id": "batch-1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-in",
                "completion_window": "24h", "status": status, "created_at": 0,
                "output_file_id": "file-out" if status == "completed" else None}

    def do_GET(self) -> None:  # noqa: N802
        path = urlparse(self.path).path
        if path.endswith("/batches/batch-1"):
            self.server.polls += 1
            self._send(200, json.dumps(self._batch("completed" if self.server.polls >= 2 else "in_progress")))
        elif path.endswith("/files/file-out/content"):
            out = []
            for line in self.server.uploaded:
                req = json.loads(line)
                content = req["body"]["messages"][0]["content"]
                marker = (MARK.search(content) or [content])[0]
                action = self.server.next_action(marker)
                if action == "drop":
                    continue
                out.append(json.dumps({"id": "r", "custom_id": req["custom_id"], "error": None, "response": {
                    "status_code": 200, "request_id": "x", "body": completion(fake_reply(content, action))}}))
            self._send(200, "\n".join(out) + "\n", "application/octet-stream")
        else:
            self._send(404, "{}")


def perspective_server() -> _Base:
    return _Base(PerspectiveHandler)


def openai_server() -> _Base:
    return _Base(OpenAIHandler)
