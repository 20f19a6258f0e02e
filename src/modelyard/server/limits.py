"""Pure-ASGI guards on request bodies: their size (413 before the body is read when Content-Length says so, and as
soon as a streamed body crosses the limit otherwise) and, for JSON bodies, standard JSON within a depth limit."""

from __future__ import annotations

import json
import re


class BodyTooLarge(Exception):
    pass


def _error_body(limit: int) -> bytes:
    return json.dumps(
        {"error": {"code": "payload_too_large", "message": f"request body exceeds the limit of {limit} bytes"}}
    ).encode()


async def _send_error(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


UNTYPED_CHECK_BYTES = 1024 * 1024


def _is_json(scope) -> bool:
    """True when the app will read the body as JSON: a JSON media type, or none at all (FastAPI's default) on a
    body small enough to read twice (a large untyped body, say a blob upload, streams through unread)."""
    length = None
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind in (b"application/json", b"text/json") or kind.endswith(b"+json")
        if name == b"content-length" and value.isdigit():
            length = int(value)
    return length is not None and length <= UNTYPED_CHECK_BYTES


class StrictJSONMiddleware:
    """Refuse, before any route sees them, JSON bodies that are not standard JSON or nest too deep.

    ``NaN``/``Infinity`` literals and numbers beyond a double's range get 422 (a stored NaN would make every later
    read of the record fail: browsers' ``JSON.parse`` and PostgreSQL's JSONB reject it); nesting deeper than
    ``max_depth`` gets 400 (Python's parser would recurse until ``RecursionError``). Malformed JSON passes on to
    the route, which answers 422 in its own words. Paths ending in one of ``skip_suffixes`` (the predict proxy,
    whose replica applies the same rules with the model's signature at hand) pass unread, and so do paths matching
    ``raw_paths`` (routes that store the body as bytes: ``curl --data-binary`` sends a file with no Content-Type,
    and a binary file may well hold 65 ``[`` in a row).
    """

    def __init__(self, app, max_depth: int, skip_suffixes: tuple[str, ...] = (), raw_paths: str | None = None):
        self.app = app
        self.max_depth = max_depth
        self.skip_suffixes = skip_suffixes
        self.raw_paths = re.compile(raw_paths) if raw_paths else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or not _is_json(scope) \
                or scope["path"].endswith(self.skip_suffixes) \
                or (self.raw_paths is not None and self.raw_paths.fullmatch(scope["path"])):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                return await self.app(scope, _replay([], message, receive), send)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            from modelyard.core.jsonsafe import JSONRefused, JSONTooDeep, NotFiniteJSON, loads_strict

            try:
                loads_strict(body, self.max_depth)
            except (NotFiniteJSON, JSONTooDeep) as exc:
                return await _send_error(send, exc.status, exc.code, exc.message)
            except JSONRefused:
                pass  # malformed: the route says so in its own words
        await self.app(scope, _replay([body], None, receive), send)


def _replay(bodies: list[bytes], last: dict | None, receive):
    """A ``receive`` that hands the app the body already read, then defers to the real one."""
    pending = [{"type": "http.request", "body": b, "more_body": False} for b in bodies]
    if last is not None:
        pending.append(last)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class BodyLimitMiddleware:
    def __init__(self, app, max_body_bytes: int, page_for=None):
        """``page_for(path, limit)``: an HTML page to answer with instead of the JSON error (the console's), or
        None for the JSON error."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.page_for = page_for

    async def _reject(self, send, path: str = "") -> None:
        page = self.page_for(path, self.max_body_bytes) if self.page_for else None
        body = page if page is not None else _error_body(self.max_body_bytes)
        kind = b"text/html; charset=utf-8" if page is not None else b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return await self._reject(send, scope.get("path", ""))
                except ValueError:
                    pass
        received = 0
        response_started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._reject(send, scope.get("path", ""))
