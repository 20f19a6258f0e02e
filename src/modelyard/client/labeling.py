"""``client.label``: labeling jobs over the REST API (or in-process).

Example::

    client = modelyard.Client()
    client.label.create("cats-l1", task="classification", dataset="cats@1")
    client.label.team("cats-l1", labelers=["alice"], reviewers=["rita"])
    client.label.assign("cats-l1", ["alice"], count=100)
    job = client.label.propose("cats-l1", "cat-classifier@production", wait=True)
    page = client.label.items("cats-l1", state=["proposed"], sort="-uncertainty")
    client.label.annotate("cats-l1", page["items"][0]["item"], accept_proposal=True, seconds=1.2)
    client.label.publish("cats-l1", mode="keep")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from modelyard.core.errors import InvalidInput

JOBS = "/api/v1/labeling/jobs"


def _job(name: str) -> str:
    return f"{JOBS}/{quote(name, safe='')}"


class Labeling:
    def __init__(self, client):
        self._c = client

    # -- jobs -------------------------------------------------------------------------------------------------------
    def create(self, name: str, task: str, classes: Sequence[str] | None = None, dataset: str | None = None,
               images: str | Path | None = None, description: str = "") -> dict:
        """Open a labeling job on a dataset version (``dataset="cats@1"``) or on a local folder of images
        (``images``: uploaded first, their relative paths become the item ids). Returns
        ``modelyard.labeling-job/1``."""
        body = {"name": name, "task": task, "classes": list(classes) if classes is not None else None,
                "dataset": dataset, "description": description}
        if images is not None:
            body["files"] = self._upload(images)
        return self._c.request("POST", JOBS, json=body).json()

    def _upload(self, folder: str | Path) -> dict[str, str]:
        from modelyard.client.data import _folder_files
        from modelyard.data.images import IMAGE_SUFFIXES

        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInput(f"{folder}: not a folder of images")
        files = {name: path for name, path in _folder_files(folder).items() if name.lower().endswith(IMAGE_SUFFIXES)}
        if not files:
            raise InvalidInput(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
        return self._c.blobs.put_files(files)

    def add_images(self, name: str, images: str | Path) -> dict:
        """Upload a folder of images and add them to the job."""
        return self._c.request("POST", f"{_job(name)}/items", json={"files": self._upload(images)}).json()

    def list(self) -> dict:
        return self._c.get_json(JOBS)

    def get(self, name: str) -> dict:
        return self._c.get_json(_job(name))

    def delete(self, name: str) -> dict:
        return self._c.request("DELETE", _job(name)).json()

    # -- items ------------------------------------------------------------------------------------------------------
    def items(self, name: str, state: Sequence[str] | None = None, sort: str = "position",
              assignee: str | None = None, labeled_by: str | None = None, hard: bool | None = None,
              offset: int = 0, limit: int = 50) -> dict:
        """A page of the queue (``modelyard.labeling-items/1``); see ``LabelingStore.items``."""
        params = {"state": list(state or []), "sort": sort, "offset": offset, "limit": limit}
        for key, value in (("assignee", assignee), ("labeled_by", labeled_by)):
            if value is not None:
                params[key] = value
        if hard is not None:
            params["hard"] = "true" if hard else "false"
        return self._c.get_json(f"{_job(name)}/items", params=params)

    def item(self, name: str, item: str) -> dict:
        return self._c.get_json(f"{_job(name)}/item", params={"id": item})

    def annotate(self, name: str, item: str, labels: Sequence[str] = (), boxes: Sequence[Sequence] = (),
                 seconds: float | None = None, accept_proposal: bool = False) -> dict:
        """Save a label: class ``labels``, ``boxes`` ``[x1, y1, x2, y2, label]`` in pixels, or the proposal."""
        return self._c.request("POST", f"{_job(name)}/annotations", json={
            "item": item, "labels": list(labels), "boxes": [list(b) for b in boxes], "seconds": seconds,
            "accept_proposal": accept_proposal}).json()

    # -- team and review --------------------------------------------------------------------------------------------
    def set_member(self, name: str, principal: str, role: str) -> dict:
        return self._c.request("PUT", f"{_job(name)}/members/{quote(principal, safe='')}", json={"role": role}).json()

    def remove_member(self, name: str, principal: str) -> dict:
        return self._c.request("DELETE", f"{_job(name)}/members/{quote(principal, safe='')}").json()

    def team(self, name: str, labelers: Sequence[str] = (), reviewers: Sequence[str] = ()) -> dict:
        """Add labelers and reviewers (a member named twice ends with the last role)."""
        job = self.get(name)
        for principal in labelers:
            job = self.set_member(name, principal, "labeler")
        for principal in reviewers:
            job = self.set_member(name, principal, "reviewer")
        return job

    def assign(self, name: str, labelers: Sequence[str], items: Sequence[str] | None = None,
               count: int | None = None, state: Sequence[str] = ("unlabeled", "proposed"), sort: str = "position",
               reassign: bool = False) -> dict:
        """Assign items to labelers round-robin (``modelyard.labeling-assignment/1``)."""
        return self._c.request("POST", f"{_job(name)}/assign", json={
            "labelers": list(labelers), "items": list(items) if items is not None else None, "count": count,
            "state": list(state), "sort": sort, "reassign": reassign}).json()

    def sample_for_review(self, name: str, labeler: str | None = None, fraction: float | None = None,
                          count: int | None = None, seed: int = 0) -> dict:
        return self._c.request("POST", f"{_job(name)}/review-sample", json={
            "labeler": labeler, "fraction": fraction, "count": count, "seed": seed}).json()

    def review(self, name: str, item: str, outcome: str, rating: str | None = None, comment: str = "") -> dict:
        """``outcome`` pass or reject, ``rating`` A-D."""
        return self._c.request("POST", f"{_job(name)}/reviews", json={
            "item": item, "outcome": outcome, "rating": rating, "comment": comment}).json()

    def stats(self, name: str) -> dict:
        return self._c.get_json(f"{_job(name)}/stats")

    # -- proposals, priorities, publish -------------------------------------------------------------------------------
    def propose(self, name: str, model: str, backend: str = "auto", batch_size: int = 32, limit: int | None = None,
                wait: bool = False, timeout: float | None = None, on_update=None) -> dict:
        """Queue the ``label.propose`` job; with ``wait`` run it to the end (in-process: a worker in this process)
        and return its final state."""
        body = {"model": model, "backend": backend, "batch_size": batch_size, "limit": limit}
        if not wait:
            return self._c.request("POST", f"{_job(name)}/proposals", json=body).json()
        return self._c.jobs.run("label.propose", {"job": name, **body}, timeout=timeout, on_update=on_update)

    def import_annotations(self, name: str, annotations, as_proposals: bool = False, model: str = "") -> dict:
        """Send labels made elsewhere (``Annotated`` values, e.g. an ``AnnotationSet``'s items) into the job, as
        labels or (``as_proposals``) as a model's predictions. Returns ``modelyard.labeling-import/1``."""
        items = [{"item": a.item, "width": a.width, "height": a.height, "labels": list(a.labels),
                  "boxes": [b.to_list() for b in a.boxes]} for a in annotations]
        return self._c.request("POST", f"{_job(name)}/imports", json={
            "items": items, "as_proposals": as_proposals, "model": model}).json()

    def annotation_set(self, name: str, state: Sequence[str] = ("labeled", "in_review", "accepted")):
        """The job's saved labels in ``state`` as an ``AnnotationSet`` (read page by page), for any format's
        writer."""
        return self._annotations_and_digests(name, state)[0]

    def _annotations_and_digests(self, name: str, state: Sequence[str]):
        from modelyard.data.annotations import Annotated, AnnotationSet

        job = self.get(name)
        items, digests, offset = [], {}, 0
        while offset is not None:
            page = self.items(name, state=state, offset=offset, limit=500)
            for entry in page["items"]:
                if entry["annotation"]:
                    items.append(Annotated.from_entry(entry["item"], entry["annotation"]))
                    digests[entry["item"]] = entry["digest"]
            offset = page["next_offset"]
        return AnnotationSet(job["task"], tuple(job["classes"]), tuple(items)), digests

    def _read_blob(self, digest: str) -> bytes:
        """A blob's bytes, verified against its digest (in-process: straight from the store)."""
        import hashlib

        if self._c.in_process:
            return self._c._workspace.blobs.read_bytes(digest)
        data = self._c.request("GET", f"/api/v1/blobs/{digest}").content
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidInput(f"downloaded blob {digest} does not match its hash")
        return data

    def export(self, name: str, dest: str | Path, fmt: str, state: Sequence[str] = ("labeled", "in_review",
                                                                                    "accepted"),
               images: bool = True) -> dict:
        """Write the job's saved labels in ``state`` in an annotation format (``coco``, ``voc``, ``yolo``,
        ``labelstudio``, ``csv``) into the new or empty folder ``dest``, with the images unless ``images`` is
        False. Returns the format's summary (``{"format", "path", "items", "images", "boxes"}``)."""
        from modelyard.data import formats

        annotations, digests = self._annotations_and_digests(name, state)
        source = (lambda item: self._read_blob(digests[item])) if images else None
        return formats.write(annotations, dest, fmt, image_source=source)

    def import_file(self, name: str, path: str | Path, fmt: str = "auto", as_proposals: bool = False,
                    model: str = "") -> dict:
        """Read an annotation file or folder (COCO, VOC, YOLO, Label Studio, CSV; ``auto`` detects) here and send
        its labels (or, ``as_proposals``, its predictions) into the job, matched by item id."""
        from modelyard.data import formats

        annotations, _ = formats.read(path, fmt)
        return self.import_annotations(name, annotations.items, as_proposals=as_proposals, model=model)

    def set_priorities(self, name: str, priorities: dict[str, dict]) -> dict:
        """``{item: {"uncertainty": 0..1, "hard": bool}}``."""
        return self._c.request("POST", f"{_job(name)}/priorities", json={"items": priorities}).json()

    def publish(self, name: str, mode: str = "overwrite", dataset: str | None = None, accepted_only: bool = False,
                validation_fraction: float = 0.2, seed: int = 0, description: str = "") -> dict:
        """The next dataset version (``modelyard.dataset-version/1``)."""
        return self._c.request("POST", f"{_job(name)}/publish", json={
            "mode": mode, "dataset": dataset, "accepted_only": accepted_only,
            "validation_fraction": validation_fraction, "seed": seed, "description": description}).json()
