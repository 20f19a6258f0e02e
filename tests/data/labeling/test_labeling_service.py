"""The labeling service: jobs on a dataset version or uploaded images, the queue, labels, proposals, team review,
statistics and publish, with the refusals that must leave nothing half-written."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from labelfixtures import colour_folder, colour_png
from modelyard.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modelyard.data.annotations import Annotated, Box
from modelyard.data.datasets import DatasetStore
from modelyard.data.labeling import LabelingStore, Proposal
from modelyard.store.schema_labeling import labeling_items


@dataclass(frozen=True)
class Who:
    name: str
    role: str


OWNER = Who("owner", "editor")
ALICE = Who("alice", "editor")
BOB = Who("bob", "editor")
REVIEWER = Who("rita", "editor")
ADMIN = Who("root", "admin")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One workspace per module (migrations cost more than the tests): dataset ``colours@1`` (12 images,
    red/green/blue); each test names its own jobs."""
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    folder = tmp_path_factory.mktemp("labeling")
    workspace = Workspace.open(Settings.load(folder / "home"))
    DatasetStore(workspace).import_path(colour_folder(folder / "colours", per_class=4), "colours")
    yield workspace
    workspace.close()


@pytest.fixture
def colours(shared):
    """The shared workspace and a labeling store (job names are unique per test)."""
    return shared, LabelingStore(shared)


def _upload(workspace, names_colours: dict[str, str]) -> dict[str, str]:
    return {name: "sha256:" + workspace.blobs.put_bytes(colour_png(colour, seed=i)).digest
            for i, (name, colour) in enumerate(names_colours.items())}


def test_a_job_on_a_dataset_version_lists_its_items_with_their_existing_labels(colours):
    _, store = colours
    job = store.create("t0-c1", OWNER, task="classification", dataset="colours@1")
    assert job.classes == ("blue", "green", "red") and job.owner == "owner"
    assert job.counts["unlabeled"] == 12 and job.source["dataset"] == "colours@1"
    page = store.items("t0-c1", limit=5)
    assert page["total"] == 12 and page["next_offset"] == 5 and len(page["items"]) == 5
    first = page["items"][0]
    assert first["existing"]["labels"] == [first["item"].split("/")[0]]
    assert first["digest"].startswith("sha256:") and first["width"] == 24 and first["height"] == 16
    assert store.items("t0-c1", offset=10, limit=5)["next_offset"] is None


def test_labeling_saves_who_when_seconds_and_the_source(colours):
    _, store = colours
    store.create("t1-c1", OWNER, task="classification", dataset="colours@1")
    item = store.items("t1-c1", limit=1)["items"][0]["item"]
    saved = store.annotate("t1-c1", item, OWNER, labels=["red"], seconds=3.5)
    assert saved.state == "labeled" and saved.labeled_by == "owner" and saved.source == "manual"
    assert saved.annotation["labels"] == ["red"] and saved.seconds == 3.5 and saved.labeled_at is not None
    again = store.annotate("t1-c1", item, OWNER, labels=["blue"], seconds=1.5)
    assert again.seconds == 5.0 and again.annotation["labels"] == ["blue"]


def test_bad_labels_are_refused_with_the_item_named_and_nothing_changes(colours):
    _, store = colours
    store.create("t2-c1", OWNER, task="classification", dataset="colours@1")
    item = store.items("t2-c1", limit=1)["items"][0]["item"]
    with pytest.raises(InvalidInput, match=f"{item}: unknown class 'purple'"):
        store.annotate("t2-c1", item, OWNER, labels=["purple"])
    with pytest.raises(InvalidInput, match="takes one label"):
        store.annotate("t2-c1", item, OWNER, labels=["red", "blue"])
    with pytest.raises(InvalidInput, match="not boxes"):
        store.annotate("t2-c1", item, OWNER, boxes=[[0, 0, 4, 4, "red"]])
    with pytest.raises(NotFound, match="'nope.png' is not in labeling job"):
        store.annotate("t2-c1", "nope.png", OWNER, labels=["red"])
    with pytest.raises(InvalidInput, match="seconds"):
        store.annotate("t2-c1", item, OWNER, labels=["red"], seconds=-1)
    assert store.item("t2-c1", item).state == "unlabeled"
    assert store.items("t2-c1", state=["labeled"])["total"] == 0


def test_detection_boxes_crossing_the_edge_are_clipped_and_outside_ones_refused(colours):
    workspace, store = colours
    files = _upload(workspace, {"a.png": "red", "b.png": "blue"})
    store.create("t3-boxes", OWNER, task="detection", classes=["car", "person"], files=files)
    saved = store.annotate("t3-boxes", "a.png", OWNER, boxes=[[2, 3, 40, 10, "car"]])
    assert saved.annotation["boxes"] == [[2.0, 3.0, 24.0, 10.0, "car"]]  # the image is 24 wide
    with pytest.raises(InvalidInput, match="b.png: box .* lies outside the 24x16 image"):
        store.annotate("t3-boxes", "b.png", OWNER, boxes=[[30, 1, 40, 5, "car"]])
    with pytest.raises(InvalidInput, match="b.png: unknown class 'truck'"):
        store.annotate("t3-boxes", "b.png", OWNER, boxes=[[1, 1, 5, 5, "truck"]])
    assert store.item("t3-boxes", "b.png").annotation is None


def test_uploaded_images_make_a_job_and_a_corrupt_one_refuses_all(colours):
    workspace, store = colours
    files = _upload(workspace, {"x/1.png": "red", "x/2.png": "green"})
    files["x/3.png"] = "sha256:" + workspace.blobs.put_bytes(b"\x89PNG\r\n\x1a\nnot really").digest
    with pytest.raises(InvalidInput, match="x/3.png: cannot decode"):
        store.create("t4-up", OWNER, task="multilabel", classes=["a", "b"], files=files)
    with pytest.raises(NotFound):
        store.get("t4-up")
    del files["x/3.png"]
    job = store.create("t4-up", OWNER, task="multilabel", classes=["a", "b"], files=files)
    assert job.counts["unlabeled"] == 2 and job.source == {"dataset": None, "files": 2}
    with pytest.raises(Conflict, match="'x/1.png' is already in job"):
        store.add_items("t4-up", OWNER, _upload(workspace, {"x/1.png": "blue", "x/9.png": "red"}))
    assert store.get("t4-up").counts["unlabeled"] == 2
    assert store.add_items("t4-up", OWNER, _upload(workspace, {"x/9.png": "red"})).counts["unlabeled"] == 3


def test_job_creation_refuses_bad_label_sets_names_and_sources(colours):
    _, store = colours
    with pytest.raises(InvalidInput, match="'red' appears twice"):
        store.create("t5-j", OWNER, task="classification", classes=["red", "red"], dataset="colours@1")
    with pytest.raises(InvalidInput, match="exactly one of dataset"):
        store.create("t5-j", OWNER, task="classification", classes=["a", "b"])
    with pytest.raises(InvalidInput, match="colours@1 is a image-classification dataset; a text job needs"):
        store.create("t5-j", OWNER, task="text", classes=["a", "b"], dataset="colours@1")
    with pytest.raises(NotFound):
        store.create("t5-j", OWNER, task="classification", dataset="nothing@1")
    store.create("t5-j", OWNER, task="classification", dataset="colours@1")
    with pytest.raises(Conflict, match="exists"):
        store.create("t5-j", OWNER, task="classification", dataset="colours@1")


def _proposal(item: str, scores: dict[str, float]) -> Proposal:
    best = max(scores, key=scores.get)
    return Proposal(Annotated.make(item, labels=[best]), scores[best], scores, model="m@1")


def test_proposals_fill_unlabeled_items_and_the_outcome_of_each_label_is_recorded(colours):
    _, store = colours
    store.create("t6-c1", OWNER, task="classification", dataset="colours@1")
    items = [i["item"] for i in store.items("t6-c1", limit=4)["items"]]
    store.annotate("t6-c1", items[3], OWNER, labels=["red"])
    result = store.record_proposals("t6-c1", [
        _proposal(items[0], {"red": 0.9, "green": 0.05, "blue": 0.05}),
        _proposal(items[1], {"red": 0.4, "green": 0.35, "blue": 0.25}),
        _proposal(items[2], {"red": 0.7, "green": 0.2, "blue": 0.1}),
        _proposal(items[3], {"red": 0.7, "green": 0.2, "blue": 0.1}),
    ])
    assert result == {"proposed": 3, "skipped": 1}
    queue = store.items("t6-c1", state=["proposed"], sort="-uncertainty")["items"]
    assert [i["item"] for i in queue] == [items[1], items[2], items[0]]
    assert queue[0]["hard"] is True and queue[2]["hard"] is False
    assert [i["item"] for i in store.items("t6-c1", sort="hard", limit=1)["items"]] == [items[1]]
    assert [i["item"] for i in store.items("t6-c1", state=["proposed"], sort="-score")["items"]][0] == items[0]
    assert store.annotate("t6-c1", items[0], OWNER, accept_proposal=True).source == "proposal_accepted"
    assert store.annotate("t6-c1", items[1], OWNER, labels=["blue"]).source == "proposal_rejected"
    with pytest.raises(NotFound, match="not in job"):
        store.record_proposals("t6-c1", [_proposal("ghost.png", {"red": 1.0, "blue": 0.0})])
    with pytest.raises(InvalidInput, match="proposes 'cyan'"):
        store.record_proposals("t6-c1", [_proposal(items[2], {"cyan": 1.0})])
    assert store.item("t6-c1", items[2]).proposal["labels"] == ["red"]


def test_box_proposals_accepted_edited_or_rejected(colours):
    workspace, store = colours
    store.create("t7-boxes", OWNER, task="detection", classes=["car", "person"],
                 files=_upload(workspace, {"a.png": "red", "b.png": "blue", "c.png": "green"}))
    boxes = [Box(1, 1, 10, 10, "car", 0.9), Box(12, 2, 20, 14, "person", 0.4)]
    store.record_proposals("t7-boxes", [Proposal(Annotated.make(n, 24, 16, boxes=boxes), 0.65) for n in
                                     ("a.png", "b.png", "c.png")])
    assert store.annotate("t7-boxes", "a.png", OWNER, accept_proposal=True).source == "proposal_accepted"
    assert store.annotate("t7-boxes", "b.png", OWNER, boxes=[[1, 1, 10, 11, "car"]]).source == "proposal_edited"
    assert store.annotate("t7-boxes", "c.png", OWNER, boxes=[[1, 1, 10, 10, "person"]]).source == "proposal_rejected"


def test_team_assignment_review_and_per_labeler_figures(colours):
    _, store = colours
    store.create("t8-c1", OWNER, task="classification", dataset="colours@1")
    item = store.items("t8-c1", limit=1)["items"][0]["item"]
    with pytest.raises(Forbidden, match="not a labeler"):
        store.annotate("t8-c1", item, ALICE, labels=["red"])
    with pytest.raises(Forbidden, match="only the owner"):
        store.set_member("t8-c1", ALICE, "alice", "labeler")
    for who, role in (("alice", "labeler"), ("bob", "labeler"), ("rita", "reviewer")):
        store.set_member("t8-c1", OWNER, who, role)
    assert store.assign("t8-c1", OWNER, ["alice", "bob"], count=8) == {"assigned": {"alice": 4, "bob": 4}, "total": 8}
    mine = store.items("t8-c1", assignee="alice")["items"]
    theirs = store.items("t8-c1", assignee="bob")["items"]
    with pytest.raises(Forbidden, match="assigned to 'bob'"):
        store.annotate("t8-c1", theirs[0]["item"], ALICE, labels=["red"])
    for entry in mine:
        store.annotate("t8-c1", entry["item"], ALICE, labels=[entry["item"].split("/")[0]], seconds=10)
    store.annotate("t8-c1", theirs[0]["item"], BOB, labels=["red"], seconds=20)
    with pytest.raises(Forbidden, match="not a reviewer"):
        store.sample_for_review("t8-c1", ALICE, labeler="bob", count=1)
    sampled = store.sample_for_review("t8-c1", REVIEWER, labeler="alice", fraction=0.5, seed=1)
    assert len(sampled) == 2 and all(i.state == "in_review" and i.reviewer == "rita" for i in sampled)
    with pytest.raises(Conflict, match="is in review"):
        store.annotate("t8-c1", sampled[0].item, ALICE, labels=["red"])
    store.review("t8-c1", sampled[0].item, REVIEWER, outcome="pass", rating="A")
    rejected = store.review("t8-c1", sampled[1].item, REVIEWER, outcome="reject", rating="D", comment="wrong colour")
    assert rejected.state == "rejected" and rejected.assignee == "alice"
    assert rejected.review["comment"] == "wrong colour"
    assert store.items("t8-c1", state=["rejected"], assignee="alice")["total"] == 1
    store.annotate("t8-c1", sampled[1].item, ALICE, labels=["green"], seconds=5)
    assert store.item("t8-c1", sampled[1].item).state == "labeled"
    with pytest.raises(InvalidInput, match="rating 'E'"):
        store.review("t8-c1", theirs[0]["item"], REVIEWER, outcome="pass", rating="E")
    stats = store.stats("t8-c1")
    alice = next(p for p in stats["labelers"] if p["principal"] == "alice")
    assert alice["labeled"] == 4 and alice["passed"] == 1 and alice["rejected"] == 1 and alice["accuracy"] == 0.5
    assert alice["seconds"] == 45 and alice["items_per_hour"] == round(4 * 3600 / 45, 2)
    assert alice["ratings"] == {"A": 1, "B": 0, "C": 0, "D": 1}
    assert next(p for p in stats["labelers"] if p["principal"] == "rita")["reviewed"] == 2


def test_nobody_reviews_their_own_labels(colours):
    _, store = colours
    store.create("t9-c1", OWNER, task="classification", dataset="colours@1")
    store.set_member("t9-c1", OWNER, "rita", "reviewer")
    item = store.items("t9-c1", limit=1)["items"][0]["item"]
    store.annotate("t9-c1", item, OWNER, labels=["red"])
    with pytest.raises(Forbidden, match="cannot review their own"):
        store.review("t9-c1", item, OWNER, outcome="pass")
    with pytest.raises(Conflict, match="no items labeled by someone else"):
        store.sample_for_review("t9-c1", OWNER, count=1)
    assert store.item("t9-c1", item).state == "labeled"
    assert store.review("t9-c1", item, REVIEWER, outcome="pass").state == "accepted"


def test_prelabeling_verdict_needs_enough_timed_labels_and_compares_assisted_with_manual():
    from modelyard.data.labeling.team import prelabeling_verdict

    assert prelabeling_verdict({"manual": [10.0] * 4, "proposal_accepted": [2.0] * 9})["verdict"] == "not enough data"
    helping = prelabeling_verdict({"manual": [10.0] * 5, "proposal_accepted": [2.0] * 4, "proposal_edited": [6.0]})
    assert helping["verdict"] == "helping" and helping["ratio"] == 0.28 and helping["accepted_ratio"] == 0.2
    hurting = prelabeling_verdict({"manual": [4.0] * 5, "proposal_accepted": [3.0] * 2,
                                   "proposal_rejected": [9.0] * 3})
    assert hurting["verdict"] == "hurting" and hurting["helping"] is False
    assert prelabeling_verdict({"manual": [5.0] * 5, "proposal_edited": [5.2] * 5})["verdict"] == \
        "no clear difference"


def test_publish_makes_the_next_version_with_lineage_and_keep_or_overwrite(colours):
    workspace, store = colours
    datasets = DatasetStore(workspace)
    store.create("t11-c1", OWNER, task="classification", dataset="colours@1")
    with pytest.raises(Conflict, match="nothing labeled to publish"):
        store.publish("t11-c1", OWNER)
    assert [v.version for v in datasets.versions("colours")] == [1]
    items = [i["item"] for i in store.items("t11-c1")["items"]]
    red = next(i for i in items if i.startswith("red/"))
    store.set_member("t11-c1", OWNER, "rita", "reviewer")
    store.annotate("t11-c1", red, OWNER, labels=["blue"], seconds=2)
    store.review("t11-c1", red, REVIEWER, outcome="pass", rating="B")
    with pytest.raises(Forbidden):
        store.publish("t11-c1", ALICE)
    version = store.publish("t11-c1", OWNER, mode="overwrite")
    assert version.ref == "colours@2" and version.items == 12 and version.lineage["parent"] == "colours@1"
    assert version.lineage["labeling"]["origins"] == {"job": 1, "existing": 11}
    entries = {e["path"]: e for e in datasets.manifest(version)["entries"]}
    assert entries[red]["label"] == "blue"
    assert entries[red]["labeling"] == {"job": "t11-c1", "origin": "job", "by": "owner", "source": "manual",
                                        "review": "pass", "rating": "B"}
    assert version.stats["per_class"] == {"blue": 5, "green": 4, "red": 3}
    kept = store.publish("t11-c1", OWNER, mode="keep")
    assert kept.ref == "colours@3" and datasets.manifest(kept)["entries"][items.index(red)]["label"] == "red"
    assert [p["ref"] for p in store.get("t11-c1").published] == ["colours@2", "colours@3"]
    store.create("t11-c2", OWNER, task="classification", dataset="colours@1")
    store.annotate("t11-c2", red, OWNER, labels=["red"])
    with pytest.raises(Conflict, match="nothing accepted by a reviewer"):
        store.publish("t11-c2", OWNER, accepted_only=True)


def test_publishing_uploaded_images_needs_a_dataset_name_and_leaves_unlabeled_items_out(colours):
    workspace, store = colours
    store.create("t12-up", OWNER, task="multilabel", classes=["warm", "cold", "bright"],
                 files=_upload(workspace, {"a.png": "red", "b.png": "blue", "c.png": "green"}))
    store.annotate("t12-up", "a.png", OWNER, labels=["warm", "bright"])
    store.annotate("t12-up", "b.png", OWNER, labels=["cold"])
    with pytest.raises(InvalidInput, match="name the dataset"):
        store.publish("t12-up", OWNER)
    version = store.publish("t12-up", OWNER, dataset="moods")
    assert version.ref == "moods@1" and version.items == 2 and version.lineage["labeling"]["left_out"] == 1
    entries = DatasetStore(workspace).manifest(version)["entries"]
    assert version.kind == "multilabel-classification" and entries[0]["labels"] == ["warm", "bright"]
    assert version.schema["multilabel"] is True and {e["split"] for e in entries} <= {"t", "v"}
    assert version.stats["per_class"]["warm"] == 1


def test_the_queue_pages_10k_items_through_an_index(shared):
    sqlite_workspace, store = shared, LabelingStore(shared)
    files = {"one.png": "sha256:" + sqlite_workspace.blobs.put_bytes(colour_png("red")).digest}
    job = store.create("t13-big", OWNER, task="classification", classes=["a", "b"], files=files)
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(labeling_items.insert(), [
            {"job_id": job.id, "item": f"img/{i:05d}.png", "position": i + 1, "state": "proposed" if i % 3 else
             "unlabeled", "uncertainty": (i * 7919 % 10_000) / 10_000, "width": 8, "height": 8,
             "updated_at": job.created_at} for i in range(10_000)])
    page = store.items("t13-big", state=["proposed"], sort="-uncertainty", offset=6000, limit=100)
    assert page["total"] == 6666 and len(page["items"]) == 100 and page["next_offset"] == 6100
    values = [i["uncertainty"] for i in page["items"]]
    assert values == sorted(values, reverse=True)
    last = store.items("t13-big", sort="-uncertainty", offset=9950, limit=100)
    assert len(last["items"]) == 51 and last["next_offset"] is None
    assert last["items"][-1]["item"] == "one.png" and last["items"][-1]["uncertainty"] is None  # no score: last
    everything = [i["item"] for start in range(0, 10_001, 500)
                  for i in store.items("t13-big", sort="hard", offset=start, limit=500)["items"]]
    assert len(everything) == len(set(everything)) == 10_001
    from modelyard.data.labeling.rows import queue_segments

    with sqlite_workspace.engine.connect() as conn:
        for sort in ("position", "-uncertainty", "hard"):
            for extra, order in queue_segments(sort):
                query = sa.select(labeling_items.c.item).where(labeling_items.c.job_id == job.id, *extra) \
                    .order_by(*order).limit(50)
                compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
                plan = " ".join(str(r[-1]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")))
                # ties may be sorted by position ("FOR RIGHT PART OF ORDER BY"); never the whole job
                assert "USING INDEX" in plan and "TEMP B-TREE FOR ORDER BY" not in plan, (sort, plan)


def test_labels_and_predictions_made_elsewhere_come_in_whole_or_not_at_all(colours):
    workspace, store = colours
    store.create("t14-boxes", OWNER, task="detection", classes=["car", "person"],
                 files=_upload(workspace, {"a.png": "red", "b.png": "blue", "c.png": "green"}))
    good = Annotated.make("a.png", 24, 16, boxes=[Box(1, 1, 30, 9, "car")])
    with pytest.raises(NotFound, match="'z.png' is not in labeling job"):
        store.import_annotations("t14-boxes", OWNER, [good, Annotated.make("z.png", 24, 16)])
    with pytest.raises(InvalidInput, match="b.png: unknown class 'bus'"):
        store.import_annotations("t14-boxes", OWNER, [good, Annotated.make("b.png", 24, 16,
                                                                           boxes=[Box(1, 1, 5, 5, "bus")])])
    with pytest.raises(InvalidInput, match="b.png: the labels are for a 48x32 image, the job's is 24x16"):
        store.import_annotations("t14-boxes", OWNER, [Annotated.make("b.png", 48, 32, boxes=[Box(1, 1, 5, 5, "car")])])
    with pytest.raises(Forbidden):
        store.import_annotations("t14-boxes", ALICE, [good])
    assert store.get("t14-boxes").counts["unlabeled"] == 3
    assert store.import_annotations("t14-boxes", OWNER, [good]) == {"imported": 1, "skipped": 0}
    labeled = store.item("t14-boxes", "a.png")
    assert labeled.state == "labeled" and labeled.source == "imported" and labeled.annotation["boxes"] == \
        [[1.0, 1.0, 24.0, 9.0, "car"]]
    predicted = [Annotated.make(n, 24, 16, boxes=[Box(2, 2, 8, 8, "person", 0.3), Box(9, 2, 20, 8, "car", 0.5)])
                 for n in ("a.png", "b.png")]
    assert store.import_annotations("t14-boxes", OWNER, predicted, as_proposals=True, model="ext") == \
        {"imported": 1, "skipped": 1}
    proposed = store.item("t14-boxes", "b.png")
    assert proposed.state == "proposed" and proposed.score == pytest.approx(0.4) and proposed.hard is True
    assert proposed.proposal["boxes"][0] == [2.0, 2.0, 8.0, 8.0, "person", 0.3] and proposed.proposal["model"] == "ext"
    exported = store.annotation_set("t14-boxes")
    assert exported.task == "detection" and [a.item for a in exported.items] == ["a.png"]
    assert exported.items[0].boxes == (Box(1.0, 1.0, 24.0, 9.0, "car"),)
    with pytest.raises(Conflict, match="holds image-classification data"):
        store.publish("t14-boxes", OWNER, dataset="colours")
    version = store.publish("t14-boxes", OWNER, dataset="t14-detections")
    assert version.kind == "object-detection" and version.items == 1 and version.stats["boxes"] == 1
    entry = DatasetStore(workspace).manifest(version)["entries"][0]
    assert entry["boxes"] == [[1.0, 1.0, 24.0, 9.0, "car"]] and entry["labeling"]["source"] == "imported"
    assert DatasetStore(workspace).load_annotations(version).items[0].boxes == exported.items[0].boxes


def test_blob_gc_keeps_the_images_of_a_job_on_uploaded_files(colours):
    from modelyard.store.gc import collect_garbage

    workspace, store = colours
    files = _upload(workspace, {"keep/1.png": "red"})
    loose = "sha256:" + workspace.blobs.put_bytes(b"nobody refers to this").digest
    store.create("t16-gc", OWNER, task="classification", classes=["a", "b"], files=files)
    doomed = collect_garbage(workspace, dry_run=True, grace_s=0).deleted
    assert loose.removeprefix("sha256:") in str(doomed) and files["keep/1.png"].removeprefix("sha256:") not in \
        str(doomed)


def test_a_text_job_labels_texts_and_publishes_a_text_version(colours, tmp_path):
    workspace, store = colours
    rows = ["id,text,label", 'r0,"great film",pos', 'r1,"dull plot",neg', 'r2,"not labeled yet",']
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    DatasetStore(workspace).import_path(tmp_path / "texts.csv", "t17-reviews", kind="text-classification")
    job = store.create("t17-text", OWNER, task="text", dataset="t17-reviews@1")
    assert job.classes == ("neg", "pos") and job.counts["unlabeled"] == 3
    item = store.item("t17-text", "r2")
    assert item.text == "not labeled yet" and item.existing is None and item.digest is None
    assert store.item("t17-text", "r0").existing["labels"] == ["pos"]
    with pytest.raises(InvalidInput, match="r2: text takes one label"):
        store.annotate("t17-text", "r2", OWNER, labels=["pos", "neg"])
    store.annotate("t17-text", "r2", OWNER, labels=["neg"], seconds=3)
    version = store.publish("t17-text", OWNER)
    assert version.ref == "t17-reviews@2" and version.kind == "text-classification" and version.items == 3
    entries = {e["path"]: e for e in DatasetStore(workspace).manifest(version)["entries"]}
    assert entries["r2"]["text"] == "not labeled yet" and entries["r2"]["labels"] == ["neg"]
    assert entries["r2"]["labeling"]["origin"] == "job" and entries["r0"]["labeling"]["origin"] == "existing"
    assert version.stats["labeled"] == 3
