"""Text-generation replicas: an OpenAI-compatible API over registered language models.

``POST /v1/chat/completions`` and ``POST /v1/completions`` (streaming as server-sent events included) and
``GET /v1/models``, so the official ``openai`` client pointed at a service (``base_url=http://host:port/v1``, the
service token as ``api_key``) works. One replica serves a foundation model and any number of LoRA adapters tuned on
it: the base is loaded once, each adapter is attached by name, and the request's ``model`` picks one (``name@V`` or
the model's name; the service's name, or a name it does not know, gets the traffic split's choice only when it is
the service's own name, else 404 as OpenAI answers).

Generation runs one request at a time per replica (a CPU model uses every core anyway); health and readiness stay
answered meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.core.errors import InvalidInput, ModelyardError, NotFound

TEXT_FORMATS = ("hf", "gguf", "peft")


@dataclass
class TextVersion:
    """One servable model: a registry version and the adapter name that selects it (None: the base itself)."""

    ref: str
    name: str
    version_id: str
    weight: float
    adapter: str | None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(max_length=32)
    content: str | list[dict] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: only text parts carry anything a text model reads
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class _Sampling(BaseModel):
    # NOTE: extra fields are allowed: clients send options (stream_options, user, logit_bias...) this server ignores
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=300)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None

    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 64

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)


class CompletionRequest(_Sampling):
    prompt: str | list[str]


class TextServer:
    """The loaded model of one text replica and the versions it answers for.

    Args:
        service: the service name (a request naming it gets the traffic split's choice).
        lm: a :class:`modelyard.runtime.causal_lm.CausalLM` with every adapter attached.
        versions: what a request's ``model`` may name.
    """

    def __init__(self, service: str, lm, versions: list[TextVersion]):
        self.service = service
        self.lm = lm
        self.versions = versions
        self.lock = asyncio.Lock()
        self.created = int(time.time())

    def pick(self, model: str) -> TextVersion:
        for version in self.versions:
            if model in (version.ref, f"modelyard://{version.ref}"):
                return version
        named = [v for v in self.versions if v.name == model]
        if len(named) == 1:
            return named[0]
        if model == self.service or named:
            import random

            live = [v for v in (named or self.versions) if v.weight > 0] or self.versions
            return random.choices(live, weights=[max(v.weight, 1e-9) for v in live])[0]
        raise NotFound(f"the model {model!r} does not exist here; this service serves "
                       f"{', '.join(v.ref for v in self.versions)} (or {self.service!r} for its traffic split)")

    def activate(self, version: TextVersion):
        """A context in which ``lm`` is ``version``: its adapter set active, or every adapter off for the base."""
        import contextlib

        model = self.lm.model
        if not self.lm.adapters:
            return contextlib.nullcontext()
        if version.adapter is None:
            return model.disable_adapter()
        model.set_adapter(version.adapter)
        return contextlib.nullcontext()


def load_text_server(workspace, config: dict) -> TextServer:
    """Load the traffic's versions: one foundation (or merged model) and the LoRA adapters over it."""
    from modelyard.registry.ladder import chain_of, load_chain
    from modelyard.registry.resolve import materialize
    from modelyard.registry.versions import ModelRegistry

    registry = ModelRegistry(workspace)
    entries = [(registry.get_version_by_id(e["version_id"]), float(e["weight"])) for e in config["traffic"]]
    chains = {version.id: chain_of(registry, version) for version, _ in entries}
    prefixes = {tuple(v.id for v in (chain if chain[-1].format != "peft" else chain[:-1]))
                for chain in chains.values()}
    if len(prefixes) > 1:
        raise InvalidInput("one text replica serves one base and the LoRA adapters tuned on it; "
                           f"{', '.join(v.ref for v, _ in entries)} stand on different bases")
    prefix = chains[entries[0][0].id]
    prefix = prefix if prefix[-1].format != "peft" else prefix[:-1]
    adapters = {v.ref: materialize(registry, v) for v, _ in entries if v.format == "peft"}
    lm = load_chain(registry, prefix, adapters=adapters or None)
    versions = [TextVersion(v.ref, v.name, v.id, w, v.ref if v.format == "peft" else None) for v, w in entries]
    return TextServer(config["service"], lm, versions)


def _error(status: int, code: str, message: str):
    from starlette.responses import JSONResponse

    if status == 422:  # OpenAI answers a bad parameter with 400; its clients raise BadRequestError for it
        status = 400
    # OpenAI's clients read error.message and error.code; type and param are theirs too
    return JSONResponse({"error": {"code": code, "message": message, "type": code, "param": None}},
                        status_code=status)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def build_text_app(server: TextServer, tokens, public: bool):
    """The Starlette app of one text replica: OpenAI routes plus ``/healthz`` and ``/readyz``."""
    from starlette.applications import Starlette
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from modelyard.runtime import causal_lm

    async def authorize(request) -> None:
        """Any active token of the workspace, as for ``/v1/predict`` (cached by the same checker)."""
        from modelyard.core.errors import Unauthorized

        if public:
            return
        if tokens is None or request.headers.get("authorization") is None:
            raise Unauthorized("this service needs a token: Authorization: Bearer <token> (the openai client's "
                               "api_key)")
        if tokens.allowed(request.headers) is None:
            await run_in_threadpool(tokens.authenticate, request.headers)  # raises Unauthorized

    async def parse(request, model):
        await authorize(request)
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidInput("the body is not JSON") from None
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None

    def sampling(req: _Sampling) -> dict:
        return {"max_new_tokens": req.limit(), "temperature": req.temperature, "top_p": req.top_p, "seed": req.seed}

    async def complete(request, chat: bool):
        try:
            req = await parse(request, ChatRequest if chat else CompletionRequest)
            if not chat and isinstance(req.prompt, list) and len(req.prompt) != 1:
                raise InvalidInput("prompt: one prompt per request (a list of one is fine)")
            version = server.pick(req.model)
        except ModelyardError as exc:
            return _error(exc.status, exc.code, exc.message)
        if chat:
            prompt = server.lm.chat_prompt([{"role": m.role, "content": m.text()} for m in req.messages])
        else:
            prompt = req.prompt if isinstance(req.prompt, str) else req.prompt[0]
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        if req.stream:
            return StreamingResponse(_stream(req, version, prompt, ident, created, chat),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

        def run():
            with server.activate(version):
                return causal_lm.generate(server.lm, prompt, stop=req.stops(), **sampling(req))

        async with server.lock:
            text, prompt_tokens, completion_tokens, finish = await run_in_threadpool(run)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                  if chat else {"index": 0, "text": text, "logprobs": None, "finish_reason": finish})
        return JSONResponse({"id": ident, "object": "chat.completion" if chat else "text_completion",
                             "created": created, "model": version.ref, "choices": [choice],
                             "usage": _usage(prompt_tokens, completion_tokens)})

    async def _stream(req, version, prompt, ident, created, chat):
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish: str | None, first: bool = False) -> str:
            if chat:
                delta = {} if piece is None else {"content": piece}
                if first:
                    delta["role"] = "assistant"
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            return "data: " + json.dumps({"id": ident, "object": kind, "created": created, "model": version.ref,
                                          "choices": [choice]}) + "\n\n"

        def pieces():
            with server.activate(version):
                yield from causal_lm.stream(server.lm, prompt, **sampling(req))

        async with server.lock:
            made, first, finish = "", True, "length"
            async for piece in iterate_in_threadpool(pieces()):
                cut = _until_stop(made, piece, req.stops())
                if cut is not None:
                    if cut:
                        yield chunk(cut, None, first)
                    finish = "stop"
                    break
                made += piece
                yield chunk(piece, None, first)
                first = False
            else:
                finish = "stop" if len(server.lm.tokenizer(made)["input_ids"]) < req.limit() else "length"
            yield chunk(None, finish)
            yield "data: [DONE]\n\n"

    async def chat_completions(request):
        return await complete(request, chat=True)

    async def completions(request):
        return await complete(request, chat=False)

    async def models(request):
        try:
            await authorize(request)
        except ModelyardError as exc:
            return _error(exc.status, exc.code, exc.message)
        return JSONResponse({"object": "list", "data": [
            {"id": v.ref, "object": "model", "created": server.created, "owned_by": "modelyard"}
            for v in server.versions]})

    async def healthz(_request):
        return JSONResponse({"status": "ok", "service": server.service})

    async def readyz(_request):
        return JSONResponse({"status": "ready", "service": server.service})

    async def not_found(request, _exc):
        return _error(404, "not_found", f"no route {request.url.path}; use POST /v1/chat/completions or "
                                        "/v1/completions")

    async def wrong_method(request, _exc):
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    routes = [Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/healthz", healthz, methods=["GET"]),
              Route("/readyz", readyz, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: wrong_method})


def _until_stop(made: str, piece: str, stops: list[str]) -> str | None:
    """None while no stop sequence has appeared; else what of ``piece`` comes before the first one."""
    text = made + piece
    cuts = [text.find(s) for s in stops if s and s in text]
    if not cuts:
        return None
    return text[:min(cuts)][len(made):]
