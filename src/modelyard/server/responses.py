"""What the REST API answers, as pydantic models the OpenAPI document publishes.

The routes keep returning plain dicts (each store's ``to_dict()``): these models *document* the bodies (with
``responses=`` on each route, not ``response_model=``, so nothing is filtered or re-serialized and the JSON stays
byte-identical). They are closed (``additionalProperties: false``) so the contract test
(``tests/server/test_openapi_contract.py``, schemathesis over every operation) fails the moment a route answers a
field, a status or a shape the document does not declare. Free-form mappings (params, metrics, specs, stats) are
``dict[str, Any]``.

``documented(Model, 404, 409)`` builds a route's ``responses``: the success body plus the error statuses it can
answer, each with the one error body every error has (``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# every /api/v1 route authenticates first (401) and checks the role (403)
AUTH_ERRORS = (401, 403)
_ERROR_TEXT = {
    400: "The request is malformed (predict: the body does not fit the model's signature).",
    401: "No token, an unknown or a revoked one.",
    403: "The token's role is below what this route needs.",
    404: "The named object does not exist.",
    409: "The request contradicts the current state (e.g. cancelling a finished job).",
    413: "The request body exceeds the server's max_body_bytes.",
    415: "The body's content type is not one this route reads.",
    422: "A field, parameter or spec is invalid; the message names it.",
    429: "Too many follow streams for this token at once.",
    500: "The server failed (internal_error, with a reference to the server log) or a stored artifact no longer "
         "matches its hash (integrity_error).",
    503: "A service is not running or does not answer, or an optional stack is missing.",
}


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Closed):
    code: str = Field(description="Stable machine code: unauthorized, forbidden, not_found, conflict, "
                                  "payload_too_large, invalid_input, unavailable, internal_error, ...")
    message: str = Field(description="One line for a person.")


class ErrorBody(_Closed):
    """Every error the API answers."""

    error: ErrorDetail


def _schema_field(value: str):
    """The ``schema`` tag of a body (``Field`` alias: a field named ``schema`` would shadow BaseModel.schema)."""
    return Field(alias="schema", description=f"Versioned name of this body's shape: {value}.")


def documented(success: type[BaseModel] | None, *errors: int, status: int = 200,
               media_type: str | None = None, description: str | None = None) -> dict[int | str, dict]:
    """A route's ``responses``: the success body (a model, or ``media_type`` text/bytes) and ``errors``."""
    out: dict[int | str, dict] = {}
    if success is not None:
        out[status] = {"model": success}
        if description:
            out[status]["description"] = description
    elif media_type is not None:
        schema = {"type": "string"} if media_type.startswith("text/") else {"type": "string", "format": "binary"}
        out[status] = {"content": {media_type: {"schema": schema}}, "description": description or "The body."}
    for code in sorted(set(errors)):
        out[code] = {"model": ErrorBody, "description": _ERROR_TEXT.get(code, "Error.")}
    return out


# -- system ---------------------------------------------------------------------------------------------------------
class Health(_Closed):
    status: Literal["ok", "ready"]
    version: str


class Unhealthy(_Closed):
    status: Literal["unhealthy"]
    reason: str


class Caller(_Closed):
    name: str
    role: str


class VersionInfo(_Closed):
    schema_: Literal["modelyard.version/1"] = _schema_field("modelyard.version/1")
    version: str
    api: Literal["v1"]
    database: str
    python: str
    you: Caller


# -- jobs -----------------------------------------------------------------------------------------------------------
class JobProgress(_Closed):
    fraction: float
    message: str | None


class Job(_Closed):
    schema_: Literal["modelyard.job/1"] = _schema_field("modelyard.job/1")
    id: str
    kind: str
    spec: dict[str, Any]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: JobProgress
    result: Any = Field(description="The kind's result (a JSON value), null until it succeeded.")
    error: str | None
    attempts: int
    owner: str
    cancel_requested: bool
    worker: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None


class JobList(_Closed):
    schema_: Literal["modelyard.job-list/1"] = _schema_field("modelyard.job-list/1")
    items: list[Job]
    next: str | None = Field(description="Cursor for the next page (the 'before' parameter); null on the last.")


class JobKind(_Closed):
    name: str
    description: str
    idempotent: bool
    spec_schema: dict[str, Any]
    available: Literal[True]


class UnavailableJobKind(_Closed):
    name: str
    target: str
    available: Literal[False]
    reason: str


class JobKinds(_Closed):
    schema_: Literal["modelyard.job-kinds/1"] = _schema_field("modelyard.job-kinds/1")
    items: list[JobKind | UnavailableJobKind]


# -- tokens ---------------------------------------------------------------------------------------------------------
class TokenFields(_Closed):
    id: str
    name: str
    role: Literal["viewer", "editor", "admin"]
    prefix: str
    created_by: str | None
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    active: bool


class Token(TokenFields):
    schema_: Literal["modelyard.token/1"] = _schema_field("modelyard.token/1")


class CreatedToken(Token):
    token: str = Field(description="The secret: shown in this response and nowhere else, ever.")


class TokenList(_Closed):
    schema_: Literal["modelyard.token-list/1"] = _schema_field("modelyard.token-list/1")
    items: list[TokenFields]


# -- blobs ----------------------------------------------------------------------------------------------------------
class Blob(_Closed):
    schema_: Literal["modelyard.blob/1"] = _schema_field("modelyard.blob/1")
    digest: str = Field(description="sha256:<hex>")
    size: int


class BlobMissing(_Closed):
    schema_: Literal["modelyard.blob-missing/1"] = _schema_field("modelyard.blob-missing/1")
    missing: list[str] = Field(description="The digests the store does not hold yet.")


class BlobUpload(_Closed):
    schema_: Literal["modelyard.blob-upload/1"] = _schema_field("modelyard.blob-upload/1")
    id: str
    offset: int = Field(description="Bytes held so far: where the next chunk goes.")
    chunk_bytes: int = Field(description="The largest chunk the server takes.")


class BlobUnpinned(_Closed):
    schema_: Literal["modelyard.blob-unpinned/1"] = _schema_field("modelyard.blob-unpinned/1")
    digest: str


# -- datasets -------------------------------------------------------------------------------------------------------
class DatasetVersion(_Closed):
    schema_: Literal["modelyard.dataset-version/1"] = _schema_field("modelyard.dataset-version/1")
    id: str
    name: str
    ref: str
    version: int
    display_version: str
    kind: str
    manifest: str = Field(description="Digest of the version's manifest blob.")
    data_schema: dict[str, Any]
    split: dict[str, Any]
    stats: dict[str, Any]
    lineage: dict[str, Any]
    source: dict[str, Any]
    items: int
    size: int
    description: str
    created_by: str | None
    created_at: str | None


class DatasetSummary(_Closed):
    name: str
    kind: str
    latest: str
    versions: int
    items: int
    classes: int
    task: str | None
    created_at: str | None


class DatasetList(_Closed):
    schema_: Literal["modelyard.dataset-list/1"] = _schema_field("modelyard.dataset-list/1")
    items: list[DatasetSummary]


class Dataset(_Closed):
    schema_: Literal["modelyard.dataset/1"] = _schema_field("modelyard.dataset/1")
    name: str
    kind: str
    versions: list[DatasetVersion]


class TrainabilityCheck(_Closed):
    ref: str
    trainable: bool
    problems: list[str]
    warnings: list[str]


class DatasetStats(_Closed):
    schema_: Literal["modelyard.dataset-stats/1"] = _schema_field("modelyard.dataset-stats/1")
    ref: str
    kind: str
    stats: dict[str, Any]
    data_schema: dict[str, Any]
    check: TrainabilityCheck


class DatasetManifest(BaseModel):
    """The stored manifest: a table's blob and split, or one entry per image. Open: its fields are the kind's."""

    model_config = ConfigDict(extra="allow")
    schema_: Literal["modelyard.dataset-manifest/1"] = _schema_field("modelyard.dataset-manifest/1")
    kind: str


class DatasetDeleted(_Closed):
    schema_: Literal["modelyard.dataset-deleted/1"] = _schema_field("modelyard.dataset-deleted/1")
    name: str
    versions_deleted: list[int]


class DatasetSteps(_Closed):
    schema_: Literal["modelyard.dataset-steps/1"] = _schema_field("modelyard.dataset-steps/1")
    versions: list[DatasetVersion]


# -- runs -----------------------------------------------------------------------------------------------------------
class RunArtifact(_Closed):
    name: str
    digest: str
    size: int


class MetricPoint(_Closed):
    step: int | None
    value: float | None = Field(description="null stands for a non-finite value where JSON has none.")
    at: str | None


class Run(_Closed):
    schema_: Literal["modelyard.run/1"] = _schema_field("modelyard.run/1")
    id: str
    name: str
    experiment: str
    status: Literal["running", "finished", "failed", "killed"]
    params: dict[str, Any]
    tags: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Latest value per metric key.")
    artifacts: list[RunArtifact]
    dataset: str | None
    job_id: str | None
    model: str | None
    error: str | None
    created_by: str | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None


class RunWithHistory(Run):
    history: dict[str, list[MetricPoint]] | None = Field(
        default=None, description="Every point per metric key, in step order (absent with history=false).")


class RunList(_Closed):
    schema_: Literal["modelyard.run-list/1"] = _schema_field("modelyard.run-list/1")
    items: list[Run]
    total: int | None = Field(default=None, description="Runs matching the filters (absent with name=).")


# a value that may be non-finite travels as "NaN", "Infinity" or "-Infinity" (modelyard.core.jsonsafe)
JSONFloat = float | Literal["NaN", "Infinity", "-Infinity"] | None


class MetricSeries(_Closed):
    schema_: Literal["modelyard.metric-series/1"] = _schema_field("modelyard.metric-series/1")
    run: str
    key: str
    points: list[list[JSONFloat]] = Field(description="[step, value] pairs in step order (a step is an integer).")
    count: int
    downsampled: bool
    first_step: int | None
    last_step: int | None
    last: JSONFloat


class RunGroup(_Closed):
    value: str
    n: int
    mean: JSONFloat
    std: JSONFloat
    min: JSONFloat
    max: JSONFloat
    runs: list[str]


class RunGroups(_Closed):
    schema_: Literal["modelyard.run-groups/1"] = _schema_field("modelyard.run-groups/1")
    param: str
    metric: str
    experiment: str | None
    lower_is_better: bool
    groups: list[RunGroup]


class Differs(_Closed):
    params: list[str]
    metrics: list[str]


class RunCompare(_Closed):
    schema_: Literal["modelyard.run-compare/1"] = _schema_field("modelyard.run-compare/1")
    runs: list[Run]
    params: list[str]
    metrics: list[str]
    differs: Differs
    best: dict[str, str] = Field(description="metric -> id of the run with the best value")


class RunDeleted(_Closed):
    schema_: Literal["modelyard.run-deleted/1"] = _schema_field("modelyard.run-deleted/1")
    id: str
    name: str


class Stored(_Closed):
    stored: int


class RunLogLine(_Closed):
    at: str | None
    line: str


class RunLogs(_Closed):
    schema_: Literal["modelyard.run-logs/1"] = _schema_field("modelyard.run-logs/1")
    lines: list[RunLogLine]
    next: int


# -- models ---------------------------------------------------------------------------------------------------------
class Tensor(_Closed):
    name: str
    dtype: str
    shape: list[int | str | None]


class Signature(_Closed):
    inputs: list[Tensor]
    outputs: list[Tensor]
    batchable: bool
    preprocessing: dict[str, Any] | None
    task: dict[str, Any] | None


class ModelVersion(_Closed):
    schema_: Literal["modelyard.model-version/1"] = _schema_field("modelyard.model-version/1")
    id: str
    name: str
    version: int
    ref: str
    uri: str
    format: str
    source_format: str | None
    entry: str
    files: dict[str, Any]
    digest: str = Field(description="sha256 over the version's file names and digests: equal digests, equal content.")
    size: int
    signature: Signature
    metrics: dict[str, Any]
    tags: dict[str, Any]
    lineage: dict[str, Any]
    aliases: list[str]
    description: str
    created_by: str | None
    created_at: str | None


class ModelVersionWithCard(ModelVersion):
    card: str = Field(description="The version's model card (Markdown).")


class ModelSummary(_Closed):
    name: str
    description: str
    latest: int | None
    versions: int
    aliases: dict[str, int]
    created_at: str | None


class ModelList(_Closed):
    schema_: Literal["modelyard.model-list/1"] = _schema_field("modelyard.model-list/1")
    items: list[ModelSummary]


class Model(_Closed):
    schema_: Literal["modelyard.model/1"] = _schema_field("modelyard.model/1")
    name: str
    description: str
    created_by: str | None
    created_at: str | None
    aliases: dict[str, int]
    versions: list[ModelVersion]


class ModelDeleted(_Closed):
    schema_: Literal["modelyard.model-deleted/1"] = _schema_field("modelyard.model-deleted/1")
    name: str
    version: int | None = Field(default=None, description="Present when one version was deleted.")
    versions_deleted: int


class AliasDeleted(_Closed):
    schema_: Literal["modelyard.alias-deleted/1"] = _schema_field("modelyard.alias-deleted/1")
    name: str
    alias: str


# -- services -------------------------------------------------------------------------------------------------------
class Revision(_Closed):
    revision: int
    traffic: list[dict[str, Any]] = Field(description="[{ref, version_id, format, weight}, ...] for model versions; "
                                          "a skill service's: [{ref, kind: skill, skill, version, digest, inputs, "
                                          "weight}]")
    config: dict[str, Any]
    status: str
    message: str
    created_by: str | None
    created_at: str | None
    finished_at: str | None


class SupervisorState(_Closed):
    running: bool
    pid: int | None


class Service(_Closed):
    schema_: Literal["modelyard.service/1"] = _schema_field("modelyard.service/1")
    id: str
    name: str
    state: Literal["running", "stopped"]
    host: str
    port: int
    url: str | None
    public: bool
    replicas: int
    revision: int
    live_revision: int | None
    traffic: list[dict[str, Any]]
    config: dict[str, Any]
    revisions: list[Revision]
    created_by: str | None
    created_at: str | None
    updated_at: str | None
    status: str = Field(description="stopped, starting, deploying, ready, degraded, failed")
    message: str
    replica_states: list[dict[str, Any]]
    healthy_replicas: int
    supervisor: SupervisorState


class ServiceList(_Closed):
    schema_: Literal["modelyard.service-list/1"] = _schema_field("modelyard.service-list/1")
    items: list[Service]


class ServiceDeleted(_Closed):
    schema_: Literal["modelyard.service-deleted/1"] = _schema_field("modelyard.service-deleted/1")
    name: str
    stopped: bool = Field(description="It was running: stopped first, its replicas finish in-flight requests.")


class PredictAnswer(BaseModel):
    """A JSON answer of a service (binary answers are the npy/safetensors bytes)."""

    model_config = ConfigDict(extra="allow")
    outputs: dict[str, Any]
    model: str


class ServiceStatsPoint(_Closed):
    t: float
    requests: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    errors: int
    rows: float | None


class ServiceStats(_Closed):
    schema_: Literal["modelyard.service-stats/1"] = _schema_field("modelyard.service-stats/1")
    service: str
    requests: int
    from_: float | None = Field(alias="from")
    to: float | None
    bucket_s: float | None
    series: list[ServiceStatsPoint]
    by_model: dict[str, int]


# -- system overview and migrations ---------------------------------------------------------------------------------
class Attention(_Closed):
    what: str
    detail: str
    href: str


class Overview(_Closed):
    schema_: Literal["modelyard.overview/1"] = _schema_field("modelyard.overview/1")
    counts: dict[str, int]
    jobs_by_status: dict[str, int]
    recent_jobs: list[Job]
    services: list[dict[str, Any]]
    attention: list[Attention]


class MigrationReport(BaseModel):
    """The report a ``migrate.run`` job wrote. Open: its sections are the migration's."""

    model_config = ConfigDict(extra="allow")
    schema_: Literal["modelyard.migration-report/1"] = _schema_field("modelyard.migration-report/1")


class MigrationAcceptance(_Closed):
    schema_: Literal["modelyard.migration-acceptance/1"] = _schema_field("modelyard.migration-acceptance/1")
    id: str
    job_id: str
    name: str
    report_digest: str
    checklist_passed: bool
    note: str
    accepted_by: str
    accepted_at: str | None


class MigrationAcceptanceList(_Closed):
    schema_: Literal["modelyard.migration-acceptance-list/1"] = _schema_field("modelyard.migration-acceptance-list/1")
    items: list[MigrationAcceptance]
