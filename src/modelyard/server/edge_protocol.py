"""The device protocol's fast path: a fleet's polls and reports answered without the user API's machinery.

A fleet polls its desired state and reports all the time (1,000 devices: ~200 requests a second). Through FastAPI
each of those paid for what the user API needs -- seven middlewares, route matching, dependency solving, pydantic
validation of a free-form body, a thread hop per step -- about 1.5 ms of CPU against 0.3 ms of actual work. This
pure-ASGI layer sits in front of the app and answers the two requests that make up the traffic,
``GET /edge/v1/devices/{id}/desired`` and ``POST /edge/v1/devices/{id}/report``, with one thread hop, calling the
same functions as the FastAPI routes (``routes_edge.long_poll`` and ``routes_edge.store_report``).

It only takes requests that are plainly well-formed: a bearer credential, ``since``/``wait`` as plain numbers
within their bounds, a JSON object body of a declared length within the body limit that parses as strict JSON and
carries no events or hard examples. Anything else goes on to the app unchanged (its body replayed), whose routes
stay the documented operations and answer every error in their own words; authentication errors (401/403) are
answered here as the app would, since the service functions raise them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import parse_qsl

from modelyard.core.errors import ModelyardError
from modelyard.core.ids import new_id
from modelyard.server.routes_edge import MAX_LONG_POLL_S, long_poll, store_report

log = logging.getLogger("modelyard.server")
DEVICE_PATH = re.compile(r"/edge/v1/devices/([^/]+)/(desired|report)")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def _loads(body: bytes):
    """Strict JSON or None (the app then answers the precise error). orjson refuses ``NaN``/``Infinity`` and
    numbers beyond a double as the app does; without it, the app's own strict parser."""
    from modelyard.core.jsonsafe import MAX_DEPTH, JSONRefused, loads_strict, nests_deeper_than

    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the ml extra
        try:
            return loads_strict(body, MAX_DEPTH)
        except JSONRefused:
            return None
    if nests_deeper_than(body, MAX_DEPTH):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _dumps(value) -> bytes:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the ml extra
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return orjson.dumps(value)


def _query(query_string: bytes) -> tuple[int, float] | None:
    """``since`` and ``wait`` when both are plain and within bounds (else None: the app validates)."""
    since, wait = -1, 0.0
    seen = set()
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            return None
        seen.add(key)
        if key == "since" and _INTEGER.fullmatch(value):
            since = int(value)
        elif key == "wait" and _SECONDS.fullmatch(value) and float(value) <= MAX_LONG_POLL_S:
            wait = float(value)
        else:
            return None
    return since, wait


class DeviceProtocol:
    """Pure ASGI, outermost: the fast path for polls and reports, everything else straight to ``app``.

    Args:
        app: the rest of the ASGI stack.
        api: the FastAPI app (its state holds the workspace, the last-seen batch and the long-poll watchers).
        max_body_bytes: the body limit (a larger report goes to the app, whose limit answers 413).
        hide_paths: turns a message into what a network caller may read (the server's paths hidden).
    """

    def __init__(self, app, api, max_body_bytes: int, hide_paths=None):
        self.app = app
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.hide_paths = hide_paths or (lambda message: message)

    async def __call__(self, scope, receive, send):
        match = DEVICE_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        device_id, what = match.groups()
        secret = length = kind = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                secret = token.strip() if scheme.lower() == "bearer" else None
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                kind = value.split(b";")[0].strip().lower()
        if not secret:
            return await self.app(scope, receive, send)
        if what == "desired" and scope["method"] == "GET":
            query = _query(scope["query_string"])
            if query is None:
                return await self.app(scope, receive, send)
            return await self._answer(send, long_poll(self.api, device_id, secret, *query))
        if what != "report" or scope["method"] != "POST" or length is None or not 0 < length <= self.max_body_bytes \
                or kind not in (None, b"application/json"):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body arrived: nobody to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > length:
                break
        body = b"".join(chunks)
        report = _loads(body) if size == length else None
        if not isinstance(report, dict) or report.get("events") or report.get("hard_examples"):
            return await self.app(scope, _replay(body, more, receive), send)
        work = asyncio.get_running_loop().run_in_executor(self.api.state.edge_threads, store_report, self.api,
                                                          device_id, secret, report)
        await self._answer(send, work)

    async def _answer(self, send, work) -> None:
        headers = {}
        try:
            status, body = 200, await work
        except ModelyardError as exc:
            status, body = exc.status, {"error": {"code": exc.code, "message": self.hide_paths(exc.message)}}
            if exc.status == 401:
                headers[b"www-authenticate"] = b"Bearer"
        except Exception as exc:  # noqa: BLE001 - as the app's own handler: the details stay in the server log
            reference = new_id("err")
            log.exception("unhandled error %s", reference)
            status, body = 500, {"error": {"code": "internal_error", "message": f"internal error "
                                           f"({type(exc).__name__}); reference {reference} in the server log"}}
        data = _dumps(body)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"x-content-type-options", b"nosniff"), *headers.items()]})
        await send({"type": "http.response.body", "body": data})


def _replay(body: bytes, more: bool, receive):
    """A ``receive`` that hands the app the body read so far, then the rest from the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay():
        if pending:
            return pending.pop()
        return await receive()

    return replay
