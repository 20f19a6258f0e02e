"""The ASGI app one replica serves: ``POST /v1/predict``, ``GET /v1/models``, ``/healthz``, ``/readyz``,
``/metrics``, and the Open Inference Protocol's ``/v2`` routes (:mod:`modelyard.deploy.routes_v2`).

A replica holds every version of its revision's traffic split, each with its own runner and dynamic batcher. A
request goes to a version by weight; with a key (``X-Modelyard-Key`` header, ``?key=`` or the JSON ``key``) the
choice is a hash of the key, so the same key always lands on the same version while the split stands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from modelyard.core.errors import ModelyardError, PayloadTooLarge, Unauthorized
from modelyard.deploy.access_log import AccessLog
from modelyard.deploy.batching import DynamicBatcher
from modelyard.deploy.classes import class_predictions
from modelyard.deploy.detection import detections, encode_detections, is_detector, threshold_param
from modelyard.deploy.errors import BadRequest
from modelyard.deploy.protocol import (
    MAX_JSON_BYTES,
    costly,
    decode,
    encode_json,
    encode_npy,
    encode_safetensors,
    is_json,
    media_type,
    validate,
)
from modelyard.deploy.state import INTERNAL_HEADER, KEY_HEADER, token_revocations
from modelyard.deploy.text import TextEncoder
from modelyard.registry.signature import Signature

# how long a token checked against the database is trusted without asking again; a revocation through the API or
# CLI reaches every replica at once anyway (see TokenCheck), this bounds only a token removed behind their back
TOKEN_CACHE_S = 10.0
# costly bodies decoded at once, whatever the client count: bounds a replica's decode memory, and a JSON parse
# holds the GIL throughout, so one at a time leaves the event loop (/readyz) a turn between two
IMAGE_DECODE_SLOTS = 2
JSON_DECODE_SLOTS = 1
LOGGED_KEY_CHARS = 64


@dataclass
class LoadedVersion:
    ref: str
    version_id: str
    weight: float
    signature: Signature
    batcher: DynamicBatcher
    backend: str
    missing_ok: frozenset[str] = frozenset()  # float inputs that take NaN (JSON null) as a missing value
    text: TextEncoder | None = None  # a text model's tokenizer: raw strings in 'text' become its token inputs


def bucket(key: str) -> float:
    """A stable position in [0, 100) for a sticky key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10_000 / 100.0


def _weighted_choice(versions: list[LoadedVersion], key: str | None) -> LoadedVersion:
    total = sum(v.weight for v in versions)
    point = (bucket(key) if key is not None else random.random() * 100.0) * total / 100.0
    edge = 0.0
    for version in versions:
        edge += version.weight
        if point < edge:
            return version
    return versions[-1]


class TokenCheck:
    """Bearer tokens for predict (any active token), cached briefly so predict does not hit the database.

    Revoking a token (``DELETE /api/v1/tokens/ID``, ``modelyard tokens revoke``) bumps the workspace's revocation
    marker (:func:`modelyard.deploy.state.note_token_revoked`); a replica looks at the marker's stat on every request
    and drops its whole cache when it moved, so a revoked token is refused from the next request on.
    """

    def __init__(self, engine, internal_key: str, home: Path | None = None):
        self.engine = engine
        self.internal_key = internal_key
        self.home = home
        self._cache: dict[str, float] = {}
        self._revocations = token_revocations(home) if home is not None else None

    def _revoked_since_cached(self) -> None:
        if self.home is None:
            return
        now = token_revocations(self.home)
        if now != self._revocations:
            self._cache.clear()
            self._revocations = now

    def is_platform(self, headers) -> bool:
        """The platform's own call (its proxy, the supervisor), compared in constant time."""
        given = headers.get(INTERNAL_HEADER)
        return bool(self.internal_key and given
                    and hmac.compare_digest(given.encode("utf-8", "replace"), self.internal_key.encode()))

    def allowed(self, headers) -> str | None:
        """The caller's name when the headers carry a valid credential known without I/O, else None."""
        if self.is_platform(headers):
            return "platform"
        secret = _bearer(headers)
        if secret is None:
            return None
        self._revoked_since_cached()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        expiry = self._cache.get(digest)
        return "token" if expiry is not None and expiry > time.monotonic() else None

    def authenticate(self, headers) -> str:
        """Blocking check against the token table (run in a thread); raises Unauthorized."""
        from modelyard.store.tokens import TokenStore

        secret = _bearer(headers)
        self._revoked_since_cached()  # before the database: a revocation after this read stays visible next time
        info = TokenStore(self.engine).authenticate(secret)
        self._cache[hashlib.sha256(secret.encode()).hexdigest()] = time.monotonic() + TOKEN_CACHE_S
        if len(self._cache) > 10_000:
            self._cache.clear()
        return info.name


def _loggable_key(key: str | None) -> str | None:
    """A sticky key as the access log keeps it: at most LOGGED_KEY_CHARS characters, longer ones cut and tagged
    with their hash, so a 60 KB key costs the log ~100 bytes and equal keys still match."""
    if key is None or len(key) <= LOGGED_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]
    return f"{key[:LOGGED_KEY_CHARS]}...({len(key)} chars, sha256 {digest})"


def _bearer(headers) -> str | None:
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class ModelServer:
    """Args:
        service: the service name.
        revision: the revision this replica serves.
        replica: its index (for logs).
        versions: the loaded versions (weights add up to 100).
        public: predict (and ``/v1/models``, the details of ``/readyz``) need no token.
        max_body_bytes: larger bodies get 413.
        metrics_dir: Prometheus multiprocess folder.
        tokens: the credential checker: predict needs one unless ``public``; ``/metrics`` always does.
        access_log: file for one JSON line per predict request (None: no access log); rotated by size.
    """

    def __init__(self, service: str, revision: int, replica: int, versions: list[LoadedVersion], public: bool,
                 tokens: TokenCheck | None, max_body_bytes: int, metrics_dir: Path, access_log: Path | None):
        from modelyard.deploy.metrics import ServiceMetrics

        self.service = service
        self.revision = revision
        self.replica = replica
        self.versions = versions
        self.public = public
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.metrics_dir = metrics_dir
        self.metrics = ServiceMetrics()
        self._decode_slots: dict[str, object] = {}  # kind -> asyncio.Semaphore, made on the serving loop
        self._log = AccessLog(access_log) if access_log else None
        self.capture = None  # a monitoring.capture.Capture, set by the replica
        self._cumulative = []
        total = 0.0
        for version in versions:
            total += version.weight
            self._cumulative.append(total)
        for version in versions:
            version.batcher.on_batch = self._batch_observer(version.ref)

    def _batch_observer(self, ref: str):
        labels = (self.service, ref)

        def observe(requests: int, rows: int, seconds: float) -> None:
            self.metrics.batch_size.labels(*labels).observe(rows)
            self.metrics.batch_requests.labels(*labels).observe(requests)
            self.metrics.inference.labels(*labels).observe(seconds)

        return observe

    def choose(self, key: str | None, among: list[LoadedVersion] | None = None) -> LoadedVersion:
        """The version a request goes to: by weight, or by the hash of its sticky key; ``among`` narrows the split
        to some of its versions (a protocol route that names a model or version)."""
        if among is not None and len(among) < len(self.versions):
            return _weighted_choice(among, key)
        if len(self.versions) == 1:
            return self.versions[0]
        point = bucket(key) if key is not None else random.random() * 100.0
        for version, edge in zip(self.versions, self._cumulative, strict=True):
            if point < edge and version.weight > 0:
                return version
        return next(v for v in reversed(self.versions) if v.weight > 0)

    def decode_slots(self, content_type: str | None):
        import asyncio

        kind = "json" if is_json(media_type(content_type)) else "binary"
        if kind not in self._decode_slots:
            self._decode_slots[kind] = asyncio.Semaphore(JSON_DECODE_SLOTS if kind == "json" else IMAGE_DECODE_SLOTS)
        return self._decode_slots[kind]

    def prepare(self, body: bytes, content_type: str | None, input_name: str | None,
                key: str | None) -> tuple[LoadedVersion, dict, int, str | None, tuple[int, int] | None]:
        """Decode and validate a predict body: the version it goes to, its feeds, rows, sticky key and, for an
        image body, the image's (height, width)."""
        decoded = decode(body, content_type, self.versions[0].signature, input_name)
        key = key if key is not None else decoded.key
        version = self.choose(key)
        if version.text is not None:
            decoded.arrays = version.text.feeds(decoded.arrays)
        feeds, rows = validate(version.signature, decoded, version.missing_ok)
        return version, feeds, rows, key, decoded.image_size

    def record(self, request, started: float, ref: str, status: int, reason: str | None, rows: int, size_in: int,
               size_out: int, key: str | None, caller: str | None) -> None:
        """Count one answered request (``/v1/predict`` or the Open Inference Protocol's infer) in the metrics and
        the access log."""
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(self.service, ref, str(status)).inc()
        if status >= 400:
            self.metrics.errors.labels(self.service, ref, reason or "error").inc()
        else:
            self.metrics.latency.labels(self.service, ref).observe(elapsed)
        self.access({
            "ts": round(time.time(), 3), "service": self.service, "revision": self.revision,
            "replica": self.replica, "client": request.client.host if request.client else None,
            "path": request.url.path, "status": status, "ms": round(elapsed * 1000, 3), "model": ref,
            "rows": rows, "bytes_in": size_in, "bytes_out": size_out,
            # a caller that did not authenticate gets no line of its choosing into the log
            "key": _loggable_key(key) if caller is not None else None, "error": reason,
        })

    def access(self, record: dict) -> None:
        if self._log is not None:
            import orjson  # a tenth of json.dumps's time, on every request

            try:
                line = orjson.dumps(record).decode()
            except orjson.JSONEncodeError:  # a sticky key with a lone surrogate (from a JSON body's \ud800)
                line = json.dumps(record, separators=(",", ":"))
            self._log.write(line + "\n")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def describe(self) -> dict:
        return {"schema": "modelyard.service-models/1", "service": self.service, "revision": self.revision,
                "replica": self.replica,
                "versions": [{"ref": v.ref, "weight": v.weight, "backend": v.backend,
                              "signature": v.signature.to_dict()} for v in self.versions]}


def _error(status: int, code: str, message: str, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _read_body(request, limit: int, what: str = "request body") -> bytes:
    declared = request.headers.get("content-length")
    too_large = f"{what} exceeds the limit of {limit} bytes"
    if what != "request body":
        too_large += "; send larger inputs as application/x-npy or application/x-safetensors"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(server: ModelServer):
    """The Starlette app of one replica."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from modelyard.deploy.monitoring.capture import feedback_endpoint, observe

    async def authenticate(request) -> str:
        """Who calls (the platform, or a token's name); raises Unauthorized. Public or not."""
        if server.tokens is None:  # a server built without a checker (tests): nobody proves who they are
            raise Unauthorized("this replica checks no tokens")
        who = server.tokens.allowed(request.headers)
        if who is None:
            who = await run_in_threadpool(server.tokens.authenticate, request.headers)
        return who

    async def authorize(request) -> str:
        return "public" if server.public else await authenticate(request)

    async def may_see_details(request) -> bool:
        if server.public or (server.tokens is not None and server.tokens.is_platform(request.headers)):
            return True
        if _bearer(request.headers) is None:
            return False
        try:
            await authenticate(request)
        except Unauthorized:
            return False
        return True

    async def predict(request):
        started = time.perf_counter()
        version: LoadedVersion | None = None
        status, reason, rows, size_in, body_out = 200, None, 0, 0, b""
        feeds = outputs = None
        key, caller = request.headers.get(KEY_HEADER) or request.query_params.get("key"), None
        try:
            caller = await authorize(request)
            content_type, input_name = request.headers.get("content-type"), request.query_params.get("input")
            explicit_json = media_type(content_type) != "" and is_json(media_type(content_type))
            body = await (_read_body(request, min(server.max_body_bytes, MAX_JSON_BYTES), "a JSON body")
                          if explicit_json else _read_body(request, server.max_body_bytes))
            size_in = len(body)
            if costly(body, content_type):
                # off the event loop, a few at a time: /readyz and small requests keep being answered meanwhile
                async with server.decode_slots(content_type):
                    version, feeds, rows, key, image_size = await run_in_threadpool(
                        server.prepare, body, content_type, input_name, key)
            else:
                version, feeds, rows, key, image_size = server.prepare(body, content_type, input_name, key)
            threshold = threshold_param(request.query_params.get("threshold"))
            server.metrics.queue_depth.labels(server.service, version.ref).inc()
            try:
                outputs = await version.batcher.submit(feeds, rows)
            finally:
                server.metrics.queue_depth.labels(server.service, version.ref).dec()
            accept = media_type(request.headers.get("accept"))
            headers = {"x-modelyard-model": version.ref}
            predictions = class_predictions(version.signature, outputs)
            if accept in ("application/x-npy", "application/npy"):
                name = request.query_params.get("output") or next(iter(outputs))
                if name not in outputs:
                    raise BadRequest(f"unknown output {name!r}; the model returns {list(outputs)}")
                body_out = encode_npy(outputs[name])
                response = Response(body_out, media_type="application/x-npy", headers=headers)
            elif accept in ("application/x-safetensors", "application/safetensors"):
                body_out = encode_safetensors(outputs, predictions)
                response = Response(body_out, media_type="application/x-safetensors", headers=headers)
            elif is_detector(version.signature):
                # boxes, not raw tensors: a YOLO head's raw output is tens of thousands of numbers per image
                body_out = encode_detections(version.ref, detections(version.signature, outputs, image_size,
                                                                     threshold))
                response = Response(body_out, media_type="application/json", headers=headers)
            else:
                body_out = encode_json(outputs, version.ref, predictions)
                response = Response(body_out, media_type="application/json", headers=headers)
        except ModelyardError as exc:
            status, reason = exc.status, exc.code
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
            response = _error(exc.status, exc.code, exc.message, headers)
        except Exception as exc:  # noqa: BLE001 - a model failure is this request's 500, never the replica's end
            status, reason = 500, "inference_error"
            response = _error(
                500, "inference_error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
        if server.capture is not None:
            observe(server.capture, request, response, version.ref if version else "none", feeds, outputs, rows,
                    time.perf_counter() - started, status)
        server.record(request, started, version.ref if version else "none", status, reason, rows, size_in,
                      len(body_out), key, caller)
        return response

    async def models(request):
        try:
            await authorize(request)
        except ModelyardError as exc:
            return _error(exc.status, exc.code, exc.message)
        return JSONResponse(server.describe())

    async def healthz(_request):
        return JSONResponse({"status": "ok", "service": server.service, "replica": server.replica})

    async def readyz(request):
        # open, like /healthz: a load balancer's probe needs no token; what the replica serves (models, backends)
        # only for a caller that could ask /v1/models anyway
        ready = {"status": "ready", "service": server.service, "revision": server.revision,
                 "replica": server.replica}
        if not await may_see_details(request):
            return JSONResponse(ready)
        return JSONResponse({**ready, "models": [v.ref for v in server.versions],
                             "backends": {v.ref: v.backend for v in server.versions}})

    async def metrics(request):
        from modelyard.deploy.metrics import render

        try:
            await authenticate(request)  # operational data: a token even on a public service, like the platform's
        except ModelyardError as exc:
            return _error(exc.status, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})

        body = await run_in_threadpool(render, server.metrics_dir)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request, _exc):
        return _error(404, "not_found", f"no route {request.url.path}; use POST /v1/predict")

    async def wrong_method(request, _exc):
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    from modelyard.deploy.routes_v2 import v2_routes

    routes = [
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        # a token even on a public service: feedback writes the true labels behind its accuracy and alerts
        Route("/v1/feedback", feedback_endpoint(server, authenticate), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *v2_routes(server, authorize, _read_body),  # the Open Inference Protocol (KServe v2 / Triton HTTP)
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: wrong_method})
