"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for the real langchain-openai
client. Each request takes the next scripted reply: a dict to return as the message content
(JSON), a string (returned as is, e.g. malformed output), an int (an HTTP error status) or
``("delay", seconds)``. Requests are recorded for assertions."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer


@dataclass
class FakeOpenAI(LoopbackServer):
    """Start with ``await server.start()``; ``base_url`` then ends in ``/v1``."""

    script: list[Any] = field(default_factory=list)
    methods: tuple[str, ...] = ("json_schema", "function_calling", "json_mode")
    """Structured-output methods the server accepts; others get HTTP 400, the way llama.cpp's
    server refuses a ``json_schema`` response format."""
    refusal_status: int = 400
    """How a refused method is answered: 400, or 500 as llama-cpp-python's server does (its
    pydantic error names ``response_format``)."""
    respond: Any = None
    """When set (and the script is empty), ``respond(request_body)`` gives the reply: for
    processes that may ask the same question again after a crash."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    usage: tuple[int, int] = (1200, 150)

    def routes(self, router: web.UrlDispatcher) -> None:
        """Chat completions and audio transcriptions."""
        router.add_post("/v1/chat/completions", self._complete)
        router.add_post("/v1/audio/transcriptions", self._transcribe)

    @property
    def base_url(self) -> str:
        """``[llm] base_url`` for this server."""
        return f"{self.url}/v1"

    def prompt_text(self, index: int = -1) -> str:
        """All message contents of request ``index`` joined."""
        return "\n".join(str(m.get("content")) for m in self.requests[index]["messages"])

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({"model": form.get("model"), "audio_bytes": len(
            form["file"].file.read())})
        text = self.script.pop(0) if self.script else ""
        if isinstance(text, int):
            return web.json_response({"error": {"message": "scripted"}}, status=text)
        return web.json_response({"text": text, "language": "english", "duration": 2.0,
                                  "segments": [{"id": 0, "avg_logprob": -0.1, "text": text,
                                                "start": 0.0, "end": 2.0, "seek": 0,
                                                "tokens": [], "temperature": 0.0,
                                                "compression_ratio": 1.0,
                                                "no_speech_prob": 0.01}]})

    @staticmethod
    def method_of(body: dict) -> str:
        """The structured-output method a chat request uses."""
        if body.get("tools"):
            return "function_calling"
        kind = (body.get("response_format") or {}).get("type")
        return {"json_schema": "json_schema", "json_object": "json_mode"}.get(kind, "text")

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        method = self.method_of(body)
        if method != "text" and method not in self.methods:
            return web.json_response({"error": {
                "message": f"{method} is not supported: ('body', 'response_format', 'type'): "
                           "Input should be 'text' or "
                           "'json_object'", "type": "invalid_request_error"}},
                status=self.refusal_status)
        if self.script:
            reply = self.script.pop(0)
        elif self.respond is not None:
            reply = self.respond(body)
        else:
            reply = {"intent": "unknown", "slots": {}, "confidence": 0.0, "steps": []}
        if isinstance(reply, tuple) and reply[0] == "delay":
            await asyncio.sleep(reply[1])
            reply = self.script.pop(0) if self.script else {"intent": "help", "slots": {},
                                                             "confidence": 1.0, "steps": []}
        if isinstance(reply, int):
            return web.json_response({"error": {"message": "scripted failure",
                                                "type": "server_error"}}, status=reply)
        content = reply if isinstance(reply, str) else json.dumps(reply)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if method == "function_calling":
            tool = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{len(self.requests)}", "type": "function",
                "function": {"name": tool, "arguments": content}}]}
        prompt, completion = self.usage
        return web.json_response({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": message}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}})
