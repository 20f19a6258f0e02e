import shutil
from pathlib import Path

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.core.jobkind import LocalJobContext
from modelyard.train.label_suggest import GROUP, SUGGEST

CLASSES = ("zero", "one", "two")
_CACHE: dict = {}


def _write_pool(root: Path) -> tuple[Path, dict[str, str]]:
    """20 labeled digits per class (scikit-learn's bundled 8x8 digits) in class folders and 30 per class in
    ``unlabeled/``; returns the folder and the true class of each unlabeled file."""
    from sklearn.datasets import load_digits

    from modelyard.data.images import encode_png

    digits = load_digits()
    x, y = (digits.images * (255 / 16)).round().astype(np.uint8), digits.target
    truth = {}
    for digit, name in enumerate(CLASSES):
        picks = np.flatnonzero(y == digit)[:50]
        for n, index in enumerate(picks):
            folder = root / (name if n < 20 else "unlabeled")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name[0]}{index:05d}.png").write_bytes(encode_png(x[index]))
            if n >= 20:
                truth[f"{name[0]}{index:05d}.png"] = name
    return root, truth


@pytest.fixture(scope="session")
def pool_home(tmp_path_factory):
    """A workspace with ``digits@1``: 60 labeled and 90 unlabeled images."""
    if "home" not in _CACHE:
        from modelyard.core.settings import Settings
        from modelyard.data.datasets import DatasetStore
        from modelyard.store.workspace import Workspace

        root = tmp_path_factory.mktemp("label-suggest")
        folder, truth = _write_pool(root / "digits")
        workspace = Workspace.open(Settings.load(root / "home"))
        DatasetStore(workspace).import_path(folder, "digits")
        workspace.close()
        _CACHE["home"] = (root / "home", folder, truth)
    return _CACHE["home"]


def _run(kind, home, **spec):
    return kind.run(kind.validate_spec(spec), LocalJobContext(home=home))


def test_suggest_proposes_unlabeled_items_with_a_control_arm_and_hard_flags(pool_home):
    home, _, _ = pool_home
    result = _run(SUGGEST, home, dataset="digits@1", batch=10, after="none", hard_threshold=0.9)
    assert result["schema"] == "modelyard.label-suggest/1" and result["dataset"] == "digits@1"
    assert result["classes"] == sorted(CLASSES)
    proposals = result["proposals"]
    assert len(proposals) == 10 and [p["arm"] for p in proposals].count("control") == 1
    assert all(p["item"].startswith("unlabeled/") for p in proposals)
    assert all(p["predicted"] in CLASSES and 0 <= p["confidence"] <= 1 for p in proposals)
    assert result["hard"] == [p["item"] for p in proposals if p["confidence"] < 0.9]
    hard_pool = result["hard_pool"]
    assert hard_pool, "digits 0-2 from 48 labels: some of the 72 pool items are less than 90 % sure"
    assert set(result["hard"]) <= {h["item"] for h in hard_pool}
    assert [h["confidence"] for h in hard_pool] == sorted(h["confidence"] for h in hard_pool)
    assert all(h["confidence"] < 0.9 and h["item"].startswith("unlabeled/") for h in hard_pool)
    strategy = [p["score"] for p in proposals if p["arm"] == "strategy"]
    assert strategy == sorted(strategy, reverse=True)
    assert result["counts"] == {"labeled": 48, "heldout": 12, "pool": 72, "seed_set": 48}
    assert [point["labels"] for point in result["learning_curve"]["strategy"]] == [48]
    assert result["gain"]["advantage"] is None and not result["fallback"]
    assert result["round"] == 1 and len(result["rounds"]) == 1
    assert _run(SUGGEST, home, dataset="digits@1", batch=10, after="none", hard_threshold=0.9)["proposals"] == proposals


def test_suggest_with_kcenter_and_an_explicit_labeled_set(pool_home):
    home, _, _ = pool_home
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(home), create=False)
    entries = DatasetStore(workspace).manifest(DatasetStore(workspace).get("digits@1"))["entries"]
    workspace.close()
    labeled = [e["path"] for e in entries if not e["path"].startswith("unlabeled/")][::2]
    result = _run(SUGGEST, home, dataset="digits@1", strategy="kcenter", batch=6, labeled=labeled, after="none")
    assert result["counts"]["labeled"] + result["counts"]["heldout"] == len(labeled)
    # the other half of the labeled items joined the pool
    assert result["counts"]["pool"] > 72
    assert result["strategy"] == "kcenter" and len(result["proposals"]) == 6


@pytest.mark.parametrize(("spec", "message"), [
    ({"labeled": ["nope.png"]}, "not an item of digits@1"),
    ({"after": "job_missing"}, "no job job_missing"),
])
def test_bad_suggest_requests_say_what_is_wrong(pool_home, spec, message):
    home, _, _ = pool_home
    with pytest.raises(Exception, match=message):
        _run(SUGGEST, home, dataset="digits@1", **spec)


def test_suggest_needs_unlabeled_items(pool_home):
    home, _, _ = pool_home
    with pytest.raises(InvalidInput, match="no unlabeled item in the train split.*'todo' folder"):
        _run(SUGGEST, home, dataset="digits@1", unlabeled_class="todo", after="none")


def test_suggest_needs_two_labeled_classes(pool_home):
    home, folder, _ = pool_home
    only_ones = [f"one/{path.name}" for path in sorted((folder / "one").iterdir())]
    with pytest.raises(InvalidInput, match="at least 2 classes"):
        _run(SUGGEST, home, dataset="digits@1", labeled=only_ones, after="none")


def test_suggest_refuses_a_table(tmp_path):
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.samples import write_tabular_sample
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    DatasetStore(workspace).import_path(write_tabular_sample("iris", tmp_path / "iris.csv"), "iris")
    workspace.close()
    with pytest.raises(InvalidInput, match="image classification"):
        _run(SUGGEST, tmp_path / "home", dataset="iris@1")


def test_group_clusters_the_unlabeled_images(pool_home):
    home, _, truth = pool_home
    result = _run(GROUP, home, dataset="digits@1", k=3, seed=0)
    assert result["schema"] == "modelyard.label-groups/1" and result["k"] == 3
    members = [item for group in result["groups"] for item in group["items"]]
    assert sorted(members) == sorted(f"unlabeled/{name}" for name in truth)
    # digits 0, 1 and 2 mostly land in groups of their own
    purity = sum(max(sum(truth[i.split("/")[1]] == c for i in g["items"]) for c in CLASSES)
                 for g in result["groups"]) / len(members)
    assert purity > 0.8
    assert _run(GROUP, home, dataset="digits@1", k=3, seed=0) == result
    with pytest.raises(InvalidInput, match="no 'todo' folder"):
        _run(GROUP, home, dataset="digits@1", unlabeled_class="todo")


def _run_queued(home, **spec) -> dict:
    """Submit, claim and run a ``label.suggest`` job in this process, recorded in the jobs table as a worker
    would record it (so the next job can find it)."""
    from modelyard.core.settings import Settings
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(home), create=False)
    try:
        queue = JobQueue(workspace)
        job = queue.submit("label.suggest", spec)
        assert [claimed.id for claimed in queue.claim("test-worker", 1)] == [job.id]
        result = SUGGEST.run(SUGGEST.validate_spec(spec), LocalJobContext(home=home, job_id=job.id))
        assert queue.finish(job.id, "succeeded", result=result)
        return {**result, "job": job.id}
    finally:
        workspace.close()


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_rounds_chain_through_jobs_and_follow_items_into_their_class_folders(tmp_path, pool_home):
    """Round 1 on digits@1; its proposals are labeled (moved into their class folders) and imported as digits@2;
    round 2 continues round 1 by itself, finds the moved items by content and counts them as round 1's arms."""
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.store.workspace import Workspace

    _, folder, truth = pool_home
    home = tmp_path / "home"
    workspace = Workspace.open(Settings.load(home))
    DatasetStore(workspace).import_path(folder, "digits")
    first = _run_queued(home, dataset="digits@1", batch=10)
    assert first["after"] is None and first["round"] == 1
    labeled = tmp_path / "digits"
    shutil.copytree(folder, labeled)
    for proposal in first["proposals"]:
        name = proposal["item"].split("/")[1]
        (labeled / "unlabeled" / name).rename(labeled / truth[name] / name)
    store = DatasetStore(workspace)
    entries = {Path(e["path"]).name: e for e in store.manifest(store.import_path(labeled, "digits"))["entries"]}
    workspace.close()
    in_train = sum(entries[p["item"].split("/")[1]]["split"] == "t" for p in first["proposals"])
    second = _run_queued(home, dataset="digits@2", batch=10)
    assert second["after"] == first["job"] and second["round"] == 2 and len(second["rounds"]) == 2
    assert second["counts"]["seed_set"] == second["counts"]["labeled"] - in_train
    # the curve gained the point after round 1 (the seed set plus round 1's labeled proposals)
    curve = second["learning_curve"]["strategy"]
    assert [point["labels"] for point in curve] == [second["counts"]["seed_set"], second["counts"]["labeled"]]
    moved = {p["item"].split("/")[1] for p in first["proposals"]}
    assert not moved & {p["item"].split("/")[1] for p in second["proposals"]}
    fresh = _run_queued(home, dataset="digits@2", batch=10, after="none")
    assert fresh["after"] is None and fresh["round"] == 1


def test_suggest_on_a_labeling_job_ranks_its_queue(tmp_path, pool_home):
    """On a labeling job the labels people saved there train the quick model, the unlabeled items are the pool, and
    every pool item gets the model's uncertainty and hard flag in the job's queue."""
    from dataclasses import dataclass

    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.labeling.service import LabelingStore
    from modelyard.store.workspace import Workspace

    @dataclass
    class Owner:
        name: str = "owner"
        role: str = "editor"

    _, folder, truth = pool_home
    home = tmp_path / "home"
    workspace = Workspace.open(Settings.load(home))
    unlabeled_only = tmp_path / "pool" / "unlabeled"
    shutil.copytree(folder / "unlabeled", unlabeled_only)
    shutil.copytree(folder / "one", tmp_path / "pool" / "x")  # a second folder so the import has two classes
    DatasetStore(workspace).import_path(tmp_path / "pool", "pool")
    store = LabelingStore(workspace)
    store.create("digits-l1", Owner(), task="classification", classes=list(CLASSES), dataset="pool@1")
    names = sorted(truth)
    for name in names[::3]:  # a third of the unlabeled digits labeled by a person, all three classes among them
        store.annotate("digits-l1", f"unlabeled/{name}", Owner(), labels=[truth[name]])
    workspace.close()
    result = _run(SUGGEST, home, labeling_job="digits-l1", batch=6, after="none", min_control=0)
    assert result["labeling_job"] == "digits-l1" and result["dataset"] is None
    labeled = {f"unlabeled/{name}" for name in names[::3]}
    assert len(result["proposals"]) == 6 and not {p["item"] for p in result["proposals"]} & labeled
    assert result["counts"]["labeled"] + result["counts"]["heldout"] == len(labeled)
    workspace = Workspace.open(Settings.load(home), create=False)
    queue = LabelingStore(workspace).items("digits-l1", state=["unlabeled"], sort="-uncertainty", limit=500)["items"]
    workspace.close()
    assert queue and all(item["uncertainty"] is not None for item in queue)
    strategy = [p["item"] for p in result["proposals"] if p["arm"] == "strategy"]
    assert {item["item"] for item in queue[:len(strategy)]} == set(strategy)  # the margin picks head the queue
    with pytest.raises(Exception, match="either a dataset version"):
        SUGGEST.validate_spec({"dataset": "pool@1", "labeling_job": "digits-l1"})
