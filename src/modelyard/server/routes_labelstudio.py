"""Any registered model as a Label Studio ML backend: point a Label Studio project's "Model" connection at
``http://<server>/labelstudio/<model>`` (``<model>`` is ``N``, ``N@V`` or ``N@alias``).

* ``GET  /labelstudio/{model}/health`` -> ``{"status": "UP", ...}`` (open: Label Studio probes it before it
  authenticates);
* ``POST /labelstudio/{model}/setup`` -> ``{"model_version"}``: checks the project's label config against the model's
  classes and remembers the project's ``hostname``/``access_token`` (for fetching its uploaded images);
* ``POST /labelstudio/{model}/predict`` -> ``{"results": [{"model_version", "score", "result"}], "model_version"}``
  with results in Label Studio's convention (boxes in percent of the image, from its top-left corner).

Authentication: Label Studio's ML backend connection sends either basic auth (put a Modelyard token in the password
field; the user name is ignored) or an ``Authorization: Bearer <token>`` header. Predicting needs a viewer token;
``setup`` with a ``hostname`` makes the server fetch images from that host, so it needs an editor token.

A task's image may be a ``data:`` URI, a Modelyard blob digest (``sha256:...``), or a URL on the host given at
``setup`` (Label Studio's ``/data/upload/...``), fetched with the project's access token.
"""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import Forbidden, InvalidInput, Unauthorized
from modelyard.server.auth import Principal
from modelyard.server.responses import documented
from modelyard.server.responses_labeling import LabelStudioHealth, LabelStudioPredictions, LabelStudioSetup
from modelyard.store.tokens import TokenStore, role_allows

router = APIRouter(prefix="/labelstudio", tags=["label studio ML backend"])
MAX_TASKS = 1000
PREDICT_CHUNK = 8  # tasks read and decoded at a time (each image may be up to 64 Mpixels once decoded)
MAX_CACHED_MODELS = 4
FETCH_TIMEOUT_S = 15.0
_LOCK = threading.Lock()


class Setup(BaseModel):
    model_config = ConfigDict(extra="allow")  # Label Studio adds fields across versions
    project: str | None = Field(default=None, max_length=200)
    label_schema: str | None = Field(default=None, alias="schema", max_length=1_000_000)
    hostname: str | None = Field(default=None, max_length=2000)
    access_token: str | None = Field(default=None, max_length=2000)


class Predict(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[dict[str, Any]] = Field(max_length=MAX_TASKS)
    label_config: str | None = Field(default=None, max_length=1_000_000)
    project: str | None = Field(default=None, max_length=200)


def _principal(request: Request, role: str) -> Principal:
    """Bearer token, or basic auth whose password is the token (what Label Studio's connection form sends)."""
    header = request.headers.get("authorization")
    local = request.app.state.local_principal
    if header is None and local is not None:
        principal = local
    else:
        scheme, _, value = (header or "").partition(" ")
        secret = value.strip() if scheme.lower() == "bearer" else None
        if scheme.lower() == "basic":
            try:
                secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("basic auth: the credentials are not base64 of user:token") from None
        if not secret:
            raise Unauthorized("send a Modelyard token: 'Authorization: Bearer <token>' or basic auth with the token "
                               "as the password")
        info = TokenStore(request.app.state.workspace.engine).authenticate(secret)
        principal = Principal(info.name, info.role, info.id)
    if not role_allows(principal.role, role):
        raise Forbidden(f"this needs the {role} role; token '{principal.name}' has {principal.role}")
    return principal


def _predictor(request: Request, model: str):
    """A loaded predictor for ``model``, kept warm for the next request (a few models at most)."""
    from modelyard.deploy.prelabel import Predictor
    from modelyard.registry.versions import ModelRegistry

    workspace = request.app.state.workspace
    version = ModelRegistry(workspace).get_version(model)
    with _LOCK:
        cache = request.app.state.__dict__.setdefault("labelstudio_predictors", {})
        if version.id not in cache:
            while len(cache) >= MAX_CACHED_MODELS:
                cache.pop(next(iter(cache))).close()
            cache[version.id] = Predictor(workspace, version.ref)
        return cache[version.id]


def close_predictors(app) -> None:
    """Release the runners the backend keeps warm (the app's close)."""
    with _LOCK:
        cache = app.state.__dict__.get("labelstudio_predictors", {})
        while cache:
            cache.pop(next(iter(cache))).close()


def _project_key(project: str | None) -> str:
    # Label Studio sends "<project id>.<timestamp of its config>"; the id alone names the project
    return (project or "").split(".")[0]


def _image_bytes(request: Request, value: Any, task_id: Any, project: str | None) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"task {task_id}: no image in its data")
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if ";base64" not in header:
            raise InvalidInput(f"task {task_id}: a data: URI image must be base64")
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise InvalidInput(f"task {task_id}: the data: URI is not valid base64") from None
    blobs = request.app.state.workspace.blobs
    if value.startswith("sha256:"):
        return blobs.read_bytes(value)
    setup = request.app.state.__dict__.get("labelstudio_setups", {}).get(_project_key(project))
    if not setup or not setup.get("hostname"):
        raise InvalidInput(f"task {task_id}: image {value[:80]!r} is a URL; call /setup with the project's hostname "
                           "and access_token first, or send a data: URI or a Modelyard blob digest")
    return _fetch(setup, value, task_id, request.app.state.workspace.settings.max_body_bytes)


def _fetch(setup: dict, value: str, task_id: Any, limit: int) -> bytes:
    import httpx

    host = setup["hostname"].rstrip("/")
    url = value if value.startswith(("http://", "https://")) else host + "/" + value.lstrip("/")
    if not (url == host or url.startswith(host + "/")):
        raise InvalidInput(f"task {task_id}: image {value[:80]!r} is not on the project's host {host}")
    headers = {"Authorization": f"Token {setup['access_token']}"} if setup.get("access_token") else {}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=FETCH_TIMEOUT_S, follow_redirects=False) as answer:
            if answer.status_code != 200:
                raise InvalidInput(f"task {task_id}: {url} answered HTTP {answer.status_code}")
            data = bytearray()
            for chunk in answer.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise InvalidInput(f"task {task_id}: the image is larger than {limit} bytes")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"task {task_id}: cannot fetch {url}: {type(exc).__name__}") from None


def _config(text: str | None, predictor):
    from modelyard.data.labeling.labelstudio import parse_label_config

    config = parse_label_config(text or "")
    if not set(config.labels) & set(predictor.classes):
        raise InvalidInput(f"the project's labels ({', '.join(config.labels[:10])}) share none with "
                           f"{predictor.version.ref}'s classes ({', '.join(predictor.classes[:10])})")
    return config


@router.get("/{model}/health", responses=documented(LabelStudioHealth))
def health(model: str):
    """Label Studio's probe; open, and it loads nothing."""
    return {"status": "UP", "model_class": "Modelyard", "model": model}


@router.post("/{model}/setup", responses=documented(LabelStudioSetup, 401, 403, 404, 422))
def setup(model: str, body: Setup, request: Request):
    """Check the project's label config against the model and remember its host for image URLs."""
    principal = _principal(request, "editor" if body.hostname else "viewer")
    predictor = _predictor(request, model)
    if body.label_schema:
        _config(body.label_schema, predictor)
    if body.hostname:
        if not body.hostname.startswith(("http://", "https://")):
            raise InvalidInput(f"hostname {body.hostname[:80]!r}: expected http(s)://host[:port]")
        with _LOCK:
            setups = request.app.state.__dict__.setdefault("labelstudio_setups", {})
            setups[_project_key(body.project)] = {"hostname": body.hostname, "access_token": body.access_token,
                                                  "by": principal.name}
    return {"model_version": predictor.version.ref}


@router.post("/{model}/predict", responses=documented(LabelStudioPredictions, 401, 403, 404, 422))
def predict(model: str, body: Predict, request: Request):
    """Predictions for Label Studio tasks: one per task, in the order sent."""
    from modelyard.data.labeling.labelstudio import prediction

    _principal(request, "viewer")
    predictor = _predictor(request, model)
    config = _config(body.label_config, predictor)
    proposals = []
    for start in range(0, len(body.tasks), PREDICT_CHUNK):
        images = []
        for index, task in enumerate(body.tasks[start:start + PREDICT_CHUNK], start):
            task_id = task.get("id", index)
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            images.append((f"task {task_id}", _image_bytes(request, data.get(config.data_key), task_id,
                                                           body.project)))
        proposals += predictor.propose(images, config.labels, config.task)
    ref = predictor.version.ref
    return {"results": [prediction(p, config, ref) for p in proposals], "model_version": ref}
