"""A scripted LLM server on 127.0.0.1 that speaks the real wire protocols.

- OpenAI chat completions: `POST /v1/chat/completions`, JSON or server-sent events.
- Anthropic Messages: `POST /v1/messages`, JSON or its event stream.

Each request takes the next step of the script (the last one repeats): a reply text, or an
HTTP error status with the provider's error body, optionally after a delay. Every request is
recorded, so tests can read what the proposer actually sent.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Step", "FakeLLM"]

_ERROR_TYPES = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error", 400: "invalid_request_error"}


@dataclass
class Step:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int = 1000
    completion_tokens: int = 100
    headers: dict[str, str] = field(default_factory=dict)  # sent with an error (retry-after)


@dataclass
class FakeLLM:
    script: list[Step]
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Instead of the script: a function from the request's body to the step (replies that fit it).
    responder: Callable[[dict[str, Any]], Step] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def openai_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_step(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Step:
        with self._lock:
            self.requests.append({"path": path, "body": body, "headers": headers})
            if self.responder is not None:
                return self.responder(body)
            return self.script[min(len(self.requests) - 1, len(self.script) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802  (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                step = fake._next_step(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                time.sleep(step.delay_s)
                anthropic = self.path.rstrip("/").endswith("/messages")
                if step.status != 200:
                    return self._error(step.status, anthropic, step.headers)
                if anthropic:
                    return self._anthropic(body, step)
                return self._openai(body, step)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, anthropic: bool, headers: dict[str, str]) -> None:
                kind = _ERROR_TYPES.get(status, "api_error")
                if anthropic:
                    self._send(status, {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}},
                               headers)
                else:
                    self._send(status, {"error": {"message": f"fake {kind}", "type": kind, "code": kind}},
                               headers)

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()

            def _openai(self, body: dict[str, Any], step: Step) -> None:
                model = body.get("model", "fake")
                usage = {"prompt_tokens": step.prompt_tokens, "completion_tokens": step.completion_tokens,
                         "total_tokens": step.prompt_tokens + step.completion_tokens}
                ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
                if not body.get("stream"):
                    return self._send(200, {
                        "id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": step.text}}],
                        "usage": usage})
                self._events()
                pieces = [step.text[i:i + 20] for i in range(0, len(step.text), 20)] or [""]
                for n, piece in enumerate(pieces):
                    delta = {"content": piece, **({"role": "assistant"} if n == 0 else {})}
                    self._sse(None, {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                                     "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                self._sse(None, {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                                 "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                 "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")

            def _anthropic(self, body: dict[str, Any], step: Step) -> None:
                model = body.get("model", "fake")
                ident = f"msg_{uuid.uuid4().hex[:12]}"
                usage = {"input_tokens": step.prompt_tokens, "output_tokens": step.completion_tokens}
                if not body.get("stream"):
                    return self._send(200, {
                        "id": ident, "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": step.text}], "stop_reason": "end_turn",
                        "stop_sequence": None, "usage": usage})
                self._events()
                self._sse("message_start", {"type": "message_start", "message": {
                    "id": ident, "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": step.prompt_tokens, "output_tokens": 1}}})
                self._sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}})
                for i in range(0, len(step.text), 20):
                    self._sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": step.text[i:i + 20]}})
                self._sse("content_block_stop", {"type": "content_block_stop", "index": 0})
                self._sse("message_delta", {"type": "message_delta",
                                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                            "usage": {"output_tokens": step.completion_tokens}})
                self._sse("message_stop", {"type": "message_stop"})

            def _sse(self, event: str | None, payload: dict[str, Any]) -> None:
                head = f"event: {event}\n" if event else ""
                self.wfile.write(f"{head}data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

        return Handler
