"""``client.label``: a labeler and a reviewer, each with their own token, through the SDK in-process."""

from __future__ import annotations

import pytest

from labelfixtures import colour_folder
from modelyard.core.errors import Conflict, Forbidden, NotFound


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_two_people_label_review_and_prioritise_through_the_sdk(tmp_path):
    from modelyard.client import Client

    home = tmp_path / "home"
    with Client(home=home) as owner:
        alice_token = owner.tokens.create("alice", "editor")["token"]
        rita_token = owner.tokens.create("rita", "editor")["token"]
        job = owner.label.create("s1", "classification", classes=["red", "green", "blue"],
                                 images=colour_folder(tmp_path / "c", per_class=2))
        assert job["items"] == 6 and job["source"] == {"dataset": None, "files": 6}
        with pytest.raises(Conflict, match="'blue/0.png' is already in job"):
            owner.label.add_images("s1", colour_folder(tmp_path / "more", per_class=1))
        assert owner.label.get("s1")["items"] == 6
    with Client(home=home, token=alice_token) as alice, Client(home=home, token=rita_token) as rita:
        with pytest.raises(Forbidden):
            alice.label.annotate("s1", "red/0.png", labels=["red"])
        owner = Client(home=home)
        try:
            owner.label.team("s1", labelers=["alice"], reviewers=["rita", "ghost"])
            owner.label.remove_member("s1", "ghost")
            assert owner.label.assign("s1", ["alice"], items=["red/0.png", "blue/0.png"])["total"] == 2
            owner.label.set_priorities("s1", {"blue/0.png": {"uncertainty": 0.7, "hard": True}})
        finally:
            owner.close()
        assert [i["item"] for i in alice.label.items("s1", hard=True)["items"]] == ["blue/0.png"]
        assert alice.label.items("s1", assignee="alice", sort="-uncertainty")["items"][0]["item"] == "blue/0.png"
        alice.label.annotate("s1", "red/0.png", labels=["red"], seconds=3)
        alice.label.annotate("s1", "blue/0.png", labels=["green"], seconds=4)
        sample = rita.label.sample_for_review("s1", labeler="alice", count=2)
        assert sorted(i["item"] for i in sample["items"]) == ["blue/0.png", "red/0.png"]
        assert rita.label.review("s1", "blue/0.png", "reject", rating="D", comment="it is blue")["state"] == \
            "rejected"
        assert rita.label.review("s1", "red/0.png", "pass", rating="A")["state"] == "accepted"
        with pytest.raises(Conflict):
            rita.label.review("s1", "red/0.png", "pass")
        assert alice.label.item("s1", "blue/0.png")["assignee"] == "alice"
        exported = alice.label.annotation_set("s1", state=["accepted", "rejected"])
        assert [(a.item, a.labels) for a in exported.items] == [("blue/0.png", ("green",)), ("red/0.png", ("red",))]
        stats = rita.label.stats("s1")
        assert next(p for p in stats["labelers"] if p["principal"] == "alice")["accuracy"] == 0.5
        with pytest.raises(Forbidden):
            alice.label.delete("s1")
    with Client(home=home) as owner:
        from modelyard.data.annotations import Annotated

        imported = owner.label.import_annotations("s1", [Annotated.make("green/0.png", labels=["green"])])
        assert imported["imported"] == 1 and owner.label.item("s1", "green/0.png")["source"] == "imported"
        assert owner.label.delete("s1")["name"] == "s1"
        with pytest.raises(NotFound):
            owner.label.get("s1")
