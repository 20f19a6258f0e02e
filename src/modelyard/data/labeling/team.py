"""Team labeling: members (labelers and reviewers) per job, assignment, the review step, and per-labeler figures.

Token roles stay ``viewer < editor < admin``; labeling membership is per job (a token's name -> ``labeler`` or
``reviewer``), so one person can label in one job and review in another without a new global role. Members write,
so their token needs at least the ``editor`` role (the API checks it before these functions run).

The review step is ModelArts' acceptance: a reviewer samples a share or a count of a labeler's labeled items, passes
or rejects each with an A-D rating and a comment; a rejected item goes back to its labeler (assigned to them, state
``rejected``) and a relabel makes it ``labeled`` again. A labeler's accuracy is the pass rate over every verdict on
their items; throughput is items per hour of the labeling time their client measured.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from modelyard.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modelyard.core.ids import isoformat, utcnow
from modelyard.data.labeling.model import LABELED_STATES, RATINGS, ROLES, Actor, LabelingJob, LabelItem
from modelyard.data.labeling.rows import (
    check_states,
    existing_items,
    is_manager,
    item_of,
    item_row,
    job_of,
    job_row,
    queue_page,
    require_manager,
)
from modelyard.store.schema_labeling import labeling_items, labeling_jobs, labeling_members, labeling_reviews

# fewer timed items than this per side and the pre-labeling verdict says so instead of guessing
MIN_TIMED = 5
# the assisted/manual time ratio must leave this band before the verdict calls it helping or hurting
NEUTRAL_BAND = (0.9, 1.1)


class TeamMixin:
    """Team, assignment, review and statistics of :class:`~modelyard.data.labeling.service.LabelingStore`."""

    engine: sa.Engine

    # -- members ----------------------------------------------------------------------------------------------------
    def set_member(self, name: str, actor: Actor, principal: str, role: str) -> LabelingJob:
        """Make ``principal`` (a token's name) a ``labeler`` or ``reviewer`` of the job (owner or admin); a
        member's role is replaced."""
        principal = (principal or "").strip()
        if not principal or len(principal) > 200:
            raise InvalidInput("principal: the token's name, 1 to 200 characters")
        if role not in ROLES:
            raise InvalidInput(f"role {role!r}: expected one of {', '.join(ROLES)}")
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            require_manager(job_of(conn, row), actor, "change the team")
            conn.execute(labeling_members.delete().where(labeling_members.c.job_id == row.id,
                                                         labeling_members.c.principal == principal))
            conn.execute(labeling_members.insert().values(job_id=row.id, principal=principal, role=role,
                                                          added_by=actor.name, added_at=utcnow()))
            return job_of(conn, row)

    def remove_member(self, name: str, actor: Actor, principal: str) -> LabelingJob:
        """Take ``principal`` off the team; items assigned to them become unassigned (their labels stay)."""
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            require_manager(job, actor, "change the team")
            if principal not in job.members:
                raise NotFound(f"{principal!r} is not a member of labeling job {name!r}")
            conn.execute(labeling_members.delete().where(labeling_members.c.job_id == row.id,
                                                         labeling_members.c.principal == principal))
            conn.execute(labeling_items.update().where(labeling_items.c.job_id == row.id,
                                                       labeling_items.c.assignee == principal,
                                                       labeling_items.c.state.notin_(LABELED_STATES))
                         .values(assignee=None))
            return job_of(conn, row)

    # -- assignment -------------------------------------------------------------------------------------------------
    def assign(self, name: str, actor: Actor, labelers: Sequence[str], *, items: Sequence[str] | None = None,
               count: int | None = None, state: Sequence[str] = ("unlabeled", "proposed"),
               sort: str = "position", reassign: bool = False) -> dict:
        """Assign items to labelers, round-robin in queue order (owner or admin).

        Args:
            labelers: labeler members; with one name every chosen item goes to them (explicit assignment).
            items: these item ids; default the queue's items in ``state``, sorted by ``sort``.
            count: at most this many items.
            state: the states to pick from when ``items`` is not given (default unlabeled and proposed).
            sort: queue order to pick in (``position``, ``-uncertainty``, ``hard``, ...: see ``items``).
            reassign: also move items already assigned to someone (default: only unassigned ones).

        Returns:
            ``{"assigned": {labeler: n}, "total": n}``.
        """
        labelers = list(dict.fromkeys(labelers))
        if not labelers:
            raise InvalidInput("labelers: name at least one labeler")
        if count is not None and count < 1:
            raise InvalidInput(f"count {count}: must be 1 or more")
        states = check_states(state)
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            require_manager(job, actor, "assign items")
            missing = [p for p in labelers if job.members.get(p) != "labeler"]
            if missing:
                raise InvalidInput(f"{missing[0]!r} is not a labeler of job {name!r}; add them to the team first")
            t = labeling_items
            if items is not None:
                wanted = list(dict.fromkeys(items))
                known = existing_items(conn, row.id, wanted)
                unknown = [i for i in wanted if i not in known]
                if unknown:
                    raise NotFound(f"item {unknown[0]!r} is not in labeling job {name!r}")
                chosen = wanted[:count] if count else wanted
            else:
                where = [t.c.job_id == row.id]
                if states:
                    where.append(t.c.state.in_(states))
                if not reassign:
                    where.append(t.c.assignee.is_(None))
                chosen = queue_page(conn, where, sort, 0, count)
            per: Counter = Counter()
            now = utcnow()
            for index, item in enumerate(chosen):
                labeler = labelers[index % len(labelers)]
                conn.execute(t.update().where(t.c.job_id == row.id, t.c.item == item)
                             .values(assignee=labeler, updated_at=now))
                per[labeler] += 1
        return {"assigned": {p: per.get(p, 0) for p in labelers}, "total": len(chosen)}

    # -- review -----------------------------------------------------------------------------------------------------
    def sample_for_review(self, name: str, actor: Actor, *, labeler: str | None = None,
                          fraction: float | None = None, count: int | None = None, seed: int = 0) -> list[LabelItem]:
        """Draw a share (``fraction`` in (0, 1]) or a ``count`` of the ``labeled`` items (of ``labeler``, or of
        everyone but the reviewer) at random with ``seed``; they become ``in_review`` with the actor as reviewer.

        Raises:
            Forbidden: the actor is not a reviewer (nor the owner or an admin).
            InvalidInput: neither or both of fraction and count, or out of range.
            Conflict: there is nothing labeled to review.
        """
        if (fraction is None) == (count is None):
            raise InvalidInput("give exactly one of fraction (0 to 1) or count")
        if fraction is not None and not 0 < fraction <= 1:
            raise InvalidInput(f"fraction {fraction}: must be above 0 and at most 1")
        if count is not None and count < 1:
            raise InvalidInput(f"count {count}: must be 1 or more")
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            _require_reviewer(job, actor)
            if labeler == actor.name:
                raise Forbidden("a reviewer cannot review their own labels; ask another reviewer")
            t = labeling_items
            where = [t.c.job_id == row.id, t.c.state == "labeled", t.c.labeled_by != actor.name]
            if labeler is not None:
                where.append(t.c.labeled_by == labeler)
            pool = list(conn.execute(sa.select(t.c.item).where(*where).order_by(t.c.position)).scalars())
            if not pool:
                whose = f"labeled by {labeler!r}" if labeler else "labeled by someone else"
                raise Conflict(f"job {name!r} has no items {whose} waiting for review")
            size = min(len(pool), count if count is not None else max(1, round(fraction * len(pool))))
            picked = sorted(random.Random(seed).sample(pool, size), key=pool.index)
            now = utcnow()
            for start in range(0, len(picked), 500):
                conn.execute(t.update().where(t.c.job_id == row.id, t.c.item.in_(picked[start:start + 500]))
                             .values(state="in_review", reviewer=actor.name, updated_at=now))
            rows = conn.execute(sa.select(t).where(t.c.job_id == row.id, t.c.state == "in_review",
                                                   t.c.reviewer == actor.name).order_by(t.c.position)).all()
        chosen = set(picked)
        return [item_of(r) for r in rows if r.item in chosen]

    def review(self, name: str, item: str, actor: Actor, *, outcome: str, rating: str | None = None,
               comment: str = "") -> LabelItem:
        """Pass or reject a labeled item with an optional A-D ``rating`` and a ``comment``. ``pass`` makes it
        ``accepted``; ``reject`` makes it ``rejected`` and assigns it back to its labeler.

        Raises:
            Forbidden: the actor is not a reviewer, or labeled the item themselves.
            Conflict: the item is not labeled (or already has a verdict).
            InvalidInput: an unknown outcome or rating.
        """
        if outcome not in ("pass", "reject"):
            raise InvalidInput(f"outcome {outcome!r}: expected pass or reject")
        if rating is not None and rating not in RATINGS:
            raise InvalidInput(f"rating {rating!r}: expected one of {', '.join(RATINGS)}")
        if len(comment or "") > 10_000:
            raise InvalidInput("comment: at most 10000 characters")
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            _require_reviewer(job, actor)
            current = item_row(conn, row, item)
            if current.state not in ("labeled", "in_review"):
                raise Conflict(f"item {item!r} is {current.state.replace('_', ' ')}; only labeled items are reviewed")
            if current.labeled_by == actor.name:
                raise Forbidden(f"{actor.name!r} labeled item {item!r}; a reviewer cannot review their own labels")
            now = utcnow()
            verdict = {"outcome": outcome, "rating": rating, "comment": comment or "", "by": actor.name,
                       "at": isoformat(now)}
            values = {"state": "accepted" if outcome == "pass" else "rejected", "review": verdict,
                      "reviewer": actor.name, "updated_at": now}
            if outcome == "reject":
                values["assignee"] = current.labeled_by
            conn.execute(labeling_items.update().where(labeling_items.c.job_id == row.id,
                                                       labeling_items.c.item == item).values(**values))
            conn.execute(labeling_reviews.insert().values(
                job_id=row.id, item=item, labeler=current.labeled_by or "", reviewer=actor.name, outcome=outcome,
                rating=rating, comment=comment or "", at=now))
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(updated_at=now))
            return item_of(item_row(conn, row, item))

    # -- figures ----------------------------------------------------------------------------------------------------
    def stats(self, name: str) -> dict:
        """Per-labeler accuracy and throughput, review ratings, and whether pre-labeling is helping
        (``modelyard.labeling-stats/1``).

        Per labeler: items labeled (saved and not rejected since), seconds spent, ``items_per_hour`` (items over
        the hours their client measured), verdicts passed/rejected and ``accuracy`` (the pass rate; None before the
        first verdict), ratings A-D, and how their labels came about (manual, proposal accepted/edited/rejected).

        ``prelabeling`` compares seconds per item: manual labels against labels that started from a proposal.
        ``ratio`` is assisted / manual over every proposal-backed label (accepted, edited and rejected: an honest
        cost of assistance includes fixing and discarding proposals; CVAT measured its assisted mode 58 % slower
        than manual); ``accepted_ratio`` looks at accepted proposals alone. The verdict is ``helping`` below 0.9,
        ``hurting`` above 1.1, ``no clear difference`` between, and ``not enough data`` with fewer than 5 timed
        labels on either side.
        """
        t = labeling_items
        with self.engine.connect() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            labeled = conn.execute(sa.select(t.c.labeled_by, t.c.source, t.c.seconds, t.c.state)
                                   .where(t.c.job_id == row.id, t.c.labeled_by.is_not(None))).all()
            verdicts = conn.execute(sa.select(labeling_reviews.c.labeler, labeling_reviews.c.reviewer,
                                              labeling_reviews.c.outcome, labeling_reviews.c.rating)
                                    .where(labeling_reviews.c.job_id == row.id)).all()
        people: dict[str, dict] = defaultdict(lambda: {"labeled": 0, "rejected_open": 0, "seconds": 0.0,
                                                        "sources": Counter(), "passed": 0, "rejected": 0,
                                                        "ratings": Counter(), "reviewed": 0})
        by_source: dict[str, list[float]] = defaultdict(list)
        for labeler, source, seconds, state in labeled:
            person = people[labeler]
            if state == "rejected":
                person["rejected_open"] += 1
            else:
                person["labeled"] += 1
                if seconds > 0:
                    by_source[source or "manual"].append(float(seconds))
            person["seconds"] += float(seconds)
            person["sources"][source or "manual"] += 1
        for labeler, reviewer, outcome, rating in verdicts:
            people[labeler]["passed" if outcome == "pass" else "rejected"] += 1
            if rating:
                people[labeler]["ratings"][rating] += 1
            people[reviewer]["reviewed"] += 1
        labelers = []
        for principal, person in sorted(people.items()):
            judged = person["passed"] + person["rejected"]
            items = person["labeled"] + person["rejected_open"]
            labelers.append({
                "principal": principal,
                "role": job.members.get(principal, "owner" if principal == job.owner else None),
                "labeled": person["labeled"],
                "waiting_relabel": person["rejected_open"],
                "seconds": round(person["seconds"], 3),
                "items_per_hour": round(items * 3600 / person["seconds"], 2) if person["seconds"] > 0 else None,
                "passed": person["passed"],
                "rejected": person["rejected"],
                "accuracy": round(person["passed"] / judged, 4) if judged else None,
                "ratings": {r: person["ratings"].get(r, 0) for r in RATINGS},
                "sources": dict(person["sources"]),
                "reviewed": person["reviewed"],
            })
        return {"schema": "modelyard.labeling-stats/1", "job": job.name, "counts": job.counts,
                "labelers": labelers, "prelabeling": prelabeling_verdict(by_source)}


def prelabeling_verdict(seconds_by_source: dict[str, list[float]]) -> dict:
    """Seconds per label by source and the verdict on pre-labeling (see ``TeamMixin.stats``)."""
    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    manual = seconds_by_source.get("manual", [])
    accepted = seconds_by_source.get("proposal_accepted", [])
    assisted = accepted + seconds_by_source.get("proposal_edited", []) + seconds_by_source.get("proposal_rejected", [])
    per_source = {source: {"labels": len(values), "seconds_per_label": mean(values)}
                  for source, values in sorted(seconds_by_source.items())}
    ratio = mean(assisted) / mean(manual) if assisted and manual and mean(manual) else None
    accepted_ratio = mean(accepted) / mean(manual) if accepted and manual and mean(manual) else None
    if len(manual) < MIN_TIMED or len(assisted) < MIN_TIMED:
        verdict = "not enough data"
    elif ratio < NEUTRAL_BAND[0]:
        verdict = "helping"
    elif ratio > NEUTRAL_BAND[1]:
        verdict = "hurting"
    else:
        verdict = "no clear difference"
    return {
        "manual_seconds_per_label": mean(manual),
        "assisted_seconds_per_label": mean(assisted),
        "accepted_seconds_per_label": mean(accepted),
        "ratio": round(ratio, 4) if ratio is not None else None,
        "accepted_ratio": round(accepted_ratio, 4) if accepted_ratio is not None else None,
        "manual_labels": len(manual),
        "assisted_labels": len(assisted),
        "by_source": per_source,
        "helping": verdict == "helping" if verdict != "not enough data" else None,
        "verdict": verdict,
        "min_timed_labels": MIN_TIMED,
    }


def _require_reviewer(job: LabelingJob, actor: Actor) -> None:
    if is_manager(job, actor) or job.members.get(actor.name) == "reviewer":
        return
    raise Forbidden(f"{actor.name!r} is not a reviewer of labeling job {job.name!r}")
