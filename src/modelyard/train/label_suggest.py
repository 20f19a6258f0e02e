"""The ``label.suggest`` and ``label.group`` jobs: active learning and auto grouping on an image dataset version.

A version holds labeled and unlabeled items: the items in the ``unlabeled`` class folder (``unlabeled_class``)
have no label yet; with ``labeled`` only the named items count as labeled (to try active learning on a fully
labeled version). ``label.suggest`` trains the quick model (``modelyard.train.active_loop``) on the labeled items
of the train split, scores the unlabeled items of the train split and proposes the next batch (strategy picks
plus the random control arm, each with its score and hard-example flag). The labeled items of the validation split
are the held-out set of the learning curves.

Rounds chain through jobs: a suggest job continues the previous one on the same dataset (``after``: that job's
id; default the latest succeeded ``label.suggest`` job on the dataset's name; ``"none"`` starts over). Its
proposals that now have labels are the new round of the strategy and control arms, which is how the gain tracker
sees the learning curves grow from version to version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.data.active_learning import (
    DEFAULT_CONTROL_FRACTION,
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONTROL,
    DEFAULT_PATIENCE,
    DEFAULT_STRATEGY,
    FALLBACK_RULE,
)
from modelyard.data.hard_examples import DEFAULT_CONFIDENCE_THRESHOLD

RESULT_SCHEMA = "modelyard.label-suggest/1"
MAX_ROUNDS_KEPT = 1000


class SuggestSpec(BaseModel):
    """Args:
        dataset: an image-classification dataset version, ``NAME@VERSION``; or
        labeling_job: an image classification labeling job (``modelyard label create``): the items people labeled
            there are the labeled set (about one in five, chosen by a hash of the item id, held out), its unlabeled
            and proposed items the pool; the job's queue gets the quick model's ``uncertainty`` and ``hard`` flag
            for every pool item (``label items JOB --sort -uncertainty`` or ``--sort hard``).
        strategy: ``margin`` (default), ``entropy``, ``kcenter`` or ``random``.
        batch: items to propose (default 10).
        control_fraction: share of the batch drawn at random as the control arm (default 0.10).
        unlabeled_class: the class folder that holds unlabeled items (default ``unlabeled``).
        labeled: only these items (paths in the version) count as labeled; default every item outside
            ``unlabeled_class``.
        after: the ``label.suggest`` job this one continues; default the latest succeeded one on the same dataset
            name; ``"none"`` starts a new campaign.
        hard_threshold: proposals whose confidence (1 - normalised entropy) is below this are flagged hard.
        hard_limit: the result's ``hard_pool`` lists at most this many of the pool's hard examples, least
            confident first, for a labeling queue to put first (default 100).
        margin, patience, min_control: the gain tracker's fallback rule (see ``FALLBACK_RULE``).
        seed: seeds the control arm and the quick model.
    """

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = Field(default=None, min_length=1, max_length=200)
    labeling_job: str | None = Field(default=None, min_length=1, max_length=200)
    strategy: Literal["margin", "entropy", "kcenter", "random"] = DEFAULT_STRATEGY
    batch: int = Field(default=10, ge=1, le=10_000)
    control_fraction: float = Field(default=DEFAULT_CONTROL_FRACTION, ge=0, le=1)
    unlabeled_class: str = Field(default="unlabeled", min_length=1, max_length=200)
    labeled: list[str] | None = Field(default=None, max_length=1_000_000)
    after: str | None = Field(default=None, max_length=100)
    hard_threshold: float = Field(default=DEFAULT_CONFIDENCE_THRESHOLD, ge=0, le=1)
    hard_limit: int = Field(default=100, ge=0, le=100_000)
    margin: float = Field(default=DEFAULT_MARGIN, ge=0, le=1)
    patience: int = Field(default=DEFAULT_PATIENCE, ge=1, le=1000)
    min_control: int = Field(default=DEFAULT_MIN_CONTROL, ge=0, le=100_000)
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self):
        if (self.dataset is None) == (self.labeling_job is None):
            raise ValueError("name either a dataset version (dataset) or a labeling job (labeling_job)")
        if self.labeling_job is not None and self.labeled is not None:
            raise ValueError("labeled: a labeling job's labeled items are the ones people labeled there")
        return self


class GroupSpec(BaseModel):
    """Args:
        dataset: an image-classification dataset version, ``NAME@VERSION``.
        k: number of groups, 2-200 (default 10).
        unlabeled_class: the class folder that holds unlabeled items (default ``unlabeled``).
        include_labeled: group every item, not only the unlabeled ones.
        seed: seeds k-means++.
    """

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=200)
    k: int = Field(default=10, ge=2, le=200)
    unlabeled_class: str = Field(default="unlabeled", min_length=1, max_length=200)
    include_labeled: bool = False
    seed: int = 0


def _open_workspace(ctx: JobContext):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    return Workspace.open(Settings.load(ctx.home), create=False, migrate=False)


def _load(store, ref: str, ctx: JobContext):
    """``(version, embeddings, class_index, split, paths, class names, digests)`` of an image version."""
    from modelyard.data.image_features import FEATURE_SIZE, embed, image_features

    version = store.get(ref)
    if version.kind != "image-classification":
        raise InvalidInput(f"{version.ref} holds {version.kind} data; labeling suggestions need an image "
                           "classification dataset")
    ctx.progress(0.05, "decoding images")
    pixels, y, split, paths = store.load_images(version, FEATURE_SIZE, int(version.schema.get("channels", 3)),
                                                progress=lambda f, m: ctx.progress(0.05 + 0.45 * f, m))
    if not len(paths):
        raise InvalidInput(f"{version.ref} has no decodable images")
    # the same entries, in the same order, as load_images decodes
    digests = [e["digest"] for e in store.manifest(version)["entries"] if not e.get("error")]
    ctx.progress(0.5, "computing image features")
    return version, embed(image_features(pixels)), y, split, paths, list(version.schema["classes"]), digests


def _same_source(previous: dict, spec: SuggestSpec) -> bool:
    """A previous suggest job's spec names the same labeling job, or a version of the same dataset."""
    from modelyard.data.refs import parse_ref

    if spec.labeling_job is not None:
        return previous.get("labeling_job") == spec.labeling_job
    return bool(previous.get("dataset")) and parse_ref(previous["dataset"])[0] == parse_ref(spec.dataset)[0]


def _previous_rounds(workspace, spec: SuggestSpec) -> tuple[str | None, list[list[dict]]]:
    """The job this one continues and its rounds (each a list of ``{"item", "arm"}``), oldest first."""
    import sqlalchemy as sa

    from modelyard.store.schema import jobs

    if spec.after == "none":
        return None, []
    with workspace.engine.connect() as conn:
        if spec.after:
            row = conn.execute(sa.select(jobs.c.id, jobs.c.kind, jobs.c.status, jobs.c.result)
                               .where(jobs.c.id == spec.after)).first()
            if row is None:
                raise NotFound(f"after: no job {spec.after}")
            if row.kind != "label.suggest" or row.status != "succeeded":
                raise InvalidInput(f"after: job {spec.after} is a {row.status} {row.kind} job; name a succeeded "
                                   "label.suggest job")
        else:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.spec, jobs.c.result)
                                .where(jobs.c.kind == "label.suggest", jobs.c.status == "succeeded")
                                .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(200)).all()
            row = next((r for r in rows if _same_source(r.spec, spec)), None)
            if row is None:
                return None, []
    result = row.result or {}
    return row.id, [list(r) for r in result.get("rounds", [])]


def run_suggest(spec: SuggestSpec, ctx: JobContext) -> dict:
    """One round of active learning on a dataset version; returns the ``modelyard.label-suggest/1`` result."""
    from modelyard.data.datasets import DatasetStore

    workspace = _open_workspace(ctx)
    try:
        after, history = _previous_rounds(workspace, spec)  # fails fast on a bad after
        if spec.labeling_job is not None:
            return _suggest_for_labeling_job(workspace, spec, ctx, after, history)
        store = DatasetStore(workspace)
        version, embeddings, y, split, paths, classes, digests = _load(store, spec.dataset, ctx)
    finally:
        workspace.close()
    unlabeled_index = classes.index(spec.unlabeled_class) if spec.unlabeled_class in classes else -1
    label_set = [name for name in classes if name != spec.unlabeled_class]
    if len(label_set) < 2:
        raise InvalidInput(f"{version.ref}: labeled items of at least 2 classes are needed (classes: "
                           f"{', '.join(classes)})")
    remap = np.array([label_set.index(name) if name != spec.unlabeled_class else -1 for name in classes])
    labels = remap[y]
    is_labeled = labels >= 0
    if spec.labeled is not None:
        known = set(paths)
        missing = [p for p in spec.labeled if p not in known]
        if missing:
            raise InvalidInput(f"labeled: {missing[0]!r} is not an item of {version.ref}")
        chosen = set(spec.labeled)
        is_labeled &= np.array([p in chosen for p in paths])
    train = np.flatnonzero(is_labeled & (split == "t"))
    heldout = np.flatnonzero(is_labeled & (split == "v"))
    pool = np.flatnonzero(~is_labeled & (split == "t"))
    if not len(pool):
        raise InvalidInput(f"{version.ref}: no unlabeled item in the train split to propose; unlabeled images go in "
                           f"the {spec.unlabeled_class!r} folder (or name the labeled items with 'labeled')")
    if len(np.unique(labels[train])) < 2:
        raise InvalidInput(f"{version.ref}: the train split needs labeled items of at least 2 classes to train the "
                           f"quick model ({len(train)} labeled)")
    return _propose(spec, ctx, version.ref, embeddings, labels, split, paths, digests, label_set, train, heldout,
                    pool, after, history, spec.unlabeled_class if unlabeled_index >= 0 else None)


def _propose(spec, ctx, source, embeddings, labels, split, paths, digests, label_set, train, heldout, pool, after,
             history, unlabeled_class, on_outcome=None) -> dict:
    """Rebuild the earlier rounds, run one round of the loop and shape the ``modelyard.label-suggest/1`` result."""
    from modelyard.data.hard_examples import confidence
    from modelyard.train.active_loop import QUICK_MODEL, GainSettings, suggest

    is_labeled = labels >= 0
    # an item keeps its path in a labeling tool, but moves folder (unlabeled/x.png -> cat/x.png) when a labeled
    # folder is imported as the next version: known by path first, then by content
    by_path = {path: i for i, path in enumerate(paths)}
    by_digest = {digest: i for i, digest in enumerate(digests)}

    def find(proposal: dict) -> int | None:
        index = by_path.get(proposal["item"])
        return index if index is not None else by_digest.get(proposal.get("digest", ""))

    rounds, seen = [], set()
    for proposals in history:  # an item proposed again after it stayed unlabeled counts in its first round
        found = [(find(p), p["arm"]) for p in proposals]
        rounds.append([(i, arm) for i, arm in found
                       if i is not None and is_labeled[i] and split[i] == "t" and not (i in seen or seen.add(i))])
    ctx.progress(0.6, f"training the quick model on {len(train)} labels, {len(rounds)} earlier round(s)")
    gain = GainSettings(control_fraction=spec.control_fraction, margin=spec.margin, patience=spec.patience,
                        min_control=spec.min_control)
    outcome = suggest(embeddings, labels, train=train, heldout=heldout, pool=pool, item_ids=paths,
                      n_classes=len(label_set), strategy=spec.strategy, batch_size=spec.batch, rounds=rounds,
                      gain=gain, seed=spec.seed)
    if on_outcome is not None:
        on_outcome(outcome, [paths[i] for i in pool])
    ctx.progress(0.95, "proposing")
    sure = None if outcome.probabilities is None else confidence(outcome.probabilities)
    proposals = []
    for k, proposal in enumerate(outcome.batch.proposals):
        entry = proposal.to_dict()
        if outcome.probabilities is not None:
            best = int(outcome.probabilities[k].argmax())
            entry.update(predicted=label_set[best], probability=round(float(outcome.probabilities[k, best]), 6),
                         confidence=round(float(sure[k]), 6), hard=bool(sure[k] < spec.hard_threshold))
        else:
            entry.update(predicted=None, probability=None, confidence=None, hard=None)
        proposals.append(entry)
    verdict = outcome.verdict
    ctx.log(f"{outcome.batch}; pool {outcome.pool_size}, labeled {outcome.labeled}, held out {outcome.heldout}"
            + (f"; {verdict}" if verdict is not None else "; no learning curve (too few labeled validation items)"))
    row = {path: i for i, path in enumerate(paths)}
    kept = (history + [[{"item": p["item"], "arm": p["arm"], "digest": digests[row[p["item"]]]}
                        for p in proposals]])[-MAX_ROUNDS_KEPT:]
    return {
        "schema": RESULT_SCHEMA,
        "dataset": spec.dataset and source,
        "labeling_job": spec.labeling_job,
        "after": after,
        "round": len(history) + 1,
        "strategy": outcome.batch.strategy,
        "requested_strategy": spec.strategy,
        "fallback": outcome.batch.fallback,
        "quick_model": QUICK_MODEL,
        "classes": label_set,
        "counts": {"labeled": outcome.labeled, "heldout": outcome.heldout, "pool": outcome.pool_size,
                   "seed_set": outcome.labeled - sum(len(r) for r in rounds)},
        "proposals": proposals,
        "hard": [p["item"] for p in proposals if p["hard"]],
        "hard_pool": _hard_pool(outcome.pool_probabilities, [paths[i] for i in pool], label_set, spec),
        "learning_curve": {
            "strategy": [{"labels": n, "score": round(s, 6)} for n, s in outcome.strategy_curve],
            "random": [{"round": r, "labels": n, "score": round(s, 6)} for r, n, s in outcome.control_curve],
        },
        "gain": verdict.to_dict() if verdict is not None else {
            "fallback": False, "advantage": None, "rule": FALLBACK_RULE.format(
                margin=spec.margin, patience=spec.patience, min_control=spec.min_control),
            "reason": "no held-out set: label at least 10 items of the validation split"},
        "rounds": kept,
        "unlabeled_class": unlabeled_class,
    }


@dataclass(frozen=True)
class _SuggestActor:
    """Who sets the queue's priorities: the job itself; ``authorize_suggest`` checked at submit that its submitter
    manages the labeling job."""

    name: str
    role: str = "admin"


def _suggest_for_labeling_job(workspace, spec: SuggestSpec, ctx: JobContext, after, history) -> dict:
    """One round on a labeling job's items; the pool's uncertainty and hard flags go into the job's queue."""
    import hashlib

    from modelyard.data import images
    from modelyard.data.active_learning import margin_scores
    from modelyard.data.hard_examples import confidence
    from modelyard.data.image_features import FEATURE_SIZE, embed, image_features
    from modelyard.data.labeling.model import LABELED_STATES
    from modelyard.data.labeling.service import LabelingStore

    store = LabelingStore(workspace)
    job = store.get(spec.labeling_job)
    if job.task != "classification":
        raise InvalidInput(f"labeling job {job.name!r} is a {job.task} job; suggestions need image classification")
    items, offset = [], 0
    while True:
        page = store.items(job.name, offset=offset, limit=500)
        items += [item for item in page["items"] if item["digest"]]
        if page["next_offset"] is None:
            break
        offset = page["next_offset"]
    if not items:
        raise InvalidInput(f"labeling job {job.name!r} has no images")
    label_set = list(job.classes)

    def label_of(item: dict) -> int:
        saved = (item["annotation"] or {}).get("labels") or []
        return label_set.index(saved[0]) if item["state"] in LABELED_STATES and saved else -1

    labels = np.array([label_of(item) for item in items])
    # a stable fifth of the labeled items is held out: chosen by the item's id, so it is the same every round
    split = np.array(["v" if int(hashlib.sha256(item["item"].encode()).hexdigest()[:8], 16) % 5 == 0 else "t"
                      for item in items])
    ctx.progress(0.1, f"decoding {len(items)} images")
    pixels = np.stack([images.decode_to_array(workspace.blobs.read_bytes(item["digest"]), FEATURE_SIZE, 3)
                       for item in items])
    embeddings = embed(image_features(pixels))
    paths = [item["item"] for item in items]
    digests = [item["digest"] for item in items]
    train = np.flatnonzero((labels >= 0) & (split == "t"))
    heldout = np.flatnonzero((labels >= 0) & (split == "v"))
    pool = np.flatnonzero(labels < 0)
    if not len(pool):
        raise InvalidInput(f"labeling job {job.name!r}: every item is labeled")
    if len(np.unique(labels[train])) < 2:
        raise InvalidInput(f"labeling job {job.name!r}: label items of at least 2 classes first ({len(train)} labeled "
                           "items train the quick model)")

    def queue_priorities(outcome, pool_items: list[str]) -> None:
        if outcome.pool_probabilities is None:
            return
        uncertainty = margin_scores(outcome.pool_probabilities)
        hard = confidence(outcome.pool_probabilities) < spec.hard_threshold
        store.set_priorities(job.name, _SuggestActor(f"label.suggest:{ctx.job_id}"), {
            item: {"uncertainty": float(min(1.0, max(0.0, u))), "hard": bool(h)}
            for item, u, h in zip(pool_items, uncertainty, hard, strict=True)})

    return _propose(spec, ctx, f"labeling job {job.name}", embeddings, labels, split, paths, digests, label_set, train,
                    heldout, pool, after, history, None, on_outcome=queue_priorities)


def _hard_pool(probabilities, items: list[str], label_set: list[str], spec: SuggestSpec) -> list[dict]:
    """The pool's hard examples (confidence below the threshold), least confident first, at most ``hard_limit``."""
    from modelyard.data.hard_examples import confidence

    if probabilities is None or not len(items):
        return []
    sure = confidence(probabilities)
    order = [i for i in np.argsort(sure, kind="stable") if sure[i] < spec.hard_threshold][:spec.hard_limit]
    return [{"item": items[i], "confidence": round(float(sure[i]), 6),
             "predicted": label_set[int(probabilities[i].argmax())]} for i in order]


def run_group(spec: GroupSpec, ctx: JobContext) -> dict:
    """Cluster a version's unlabeled images into ``k`` groups; returns ``modelyard.label-groups/1``."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.grouping import group_items

    workspace = _open_workspace(ctx)
    try:
        version, embeddings, y, _split, paths, classes, _digests = _load(DatasetStore(workspace), spec.dataset, ctx)
    finally:
        workspace.close()
    if spec.include_labeled:
        chosen = np.arange(len(paths))
    else:
        if spec.unlabeled_class not in classes:
            raise InvalidInput(f"{version.ref} has no {spec.unlabeled_class!r} folder of unlabeled items; name it "
                               "with unlabeled_class or set include_labeled")
        chosen = np.flatnonzero(y == classes.index(spec.unlabeled_class))
    ctx.progress(0.7, f"grouping {len(chosen)} items into {spec.k} groups")
    grouping = group_items([paths[i] for i in chosen], embeddings[chosen], spec.k, seed=spec.seed)
    ctx.log(str(grouping))
    return {**grouping.to_dict(), "dataset": version.ref}


def authorize_dataset(spec, caller, workspace) -> None:
    """At submit: the dataset version exists (an unknown one is a 404, not a failed job); a labeling job exists and
    the caller manages it (the job writes priorities into its queue)."""
    from modelyard.data.datasets import DatasetStore

    if getattr(spec, "labeling_job", None) is not None:
        from modelyard.data.labeling.rows import require_manager
        from modelyard.data.labeling.service import LabelingStore

        require_manager(LabelingStore(workspace).get(spec.labeling_job), caller, "set suggestion priorities")
        return
    DatasetStore(workspace).get(spec.dataset)


SUGGEST = JobKind(
    "label.suggest",
    SuggestSpec,
    run_suggest,
    idempotent=True,
    authorize=authorize_dataset,
    description="Active learning: train a quick model on a dataset version's labeled images, propose the next batch "
                "to label (strategy + random control arm, hard examples flagged) with the learning curves so far.",
)

GROUP = JobKind(
    "label.group",
    GroupSpec,
    run_group,
    idempotent=True,
    authorize=authorize_dataset,
    description="Auto grouping: cluster a dataset version's unlabeled images into k groups (2-200).",
)
