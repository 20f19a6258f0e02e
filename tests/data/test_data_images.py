"""Image imports: class folders, archives, CSV of path,label; awkward and broken images; ExeML minimums."""

import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest
from datafixtures import mnist_folder, mnist_small, samples_dir  # noqa: F401  (fixtures)
from PIL import Image

from modelyard.core.errors import InvalidInput
from modelyard.data.datasets import DatasetStore


@pytest.fixture
def store(sqlite_workspace):
    return DatasetStore(sqlite_workspace)


def _png(array, mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_folder_import_manifest_split_and_stats(store, mnist_folder):
    version = store.import_path(mnist_folder, "mnist3")
    assert version.kind == "image-classification" and version.items == 60
    assert version.schema["classes"] == ["one", "two", "zero"] and version.schema["channels"] == 1
    assert version.stats["per_class_split"]["validation"] == {"one": 4, "two": 4, "zero": 4}
    assert version.stats["sizes"]["width"]["median"] == 28 and version.stats["corrupt"] == []
    manifest = store.manifest(version)
    entry = manifest["entries"][0]
    assert entry["path"].startswith("one/") and len(entry["digest"]) == 64 and entry["mode"] == "L"
    assert all(store.blobs.exists(e["digest"]) for e in manifest["entries"])
    assert store.check(version)
    x, y, split, paths = store.load_images(version, (32, 32), 1)
    assert x.shape == (60, 1, 32, 32) and x.dtype == np.uint8 and sorted(set(y.tolist())) == [0, 1, 2]
    assert (split == "v").sum() == 12 and paths[0] == entry["path"]


def test_awkward_images_are_handled_and_broken_ones_reported(store, tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            rgb = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
            (root / label / f"{i}.png").write_bytes(_png(rgb))
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)  # fully transparent: composited on white
    (root / "cat" / "rgba.png").write_bytes(_png(rgba, "RGBA"))
    (root / "dog" / "gray.bmp").write_bytes(b"")  # replaced below by a real grayscale BMP
    Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(root / "dog" / "gray.bmp")
    good = _png(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "junk.jpg").write_bytes(b"not an image at all")
    (root / "dog" / "notes.txt").write_text("ignored")
    version = store.import_path(root, "pets")
    stats = version.stats
    # undecodable files are left out of the version (never stored), each reported with its reason
    assert stats["corrupt"] == [] and stats["left_out"]["files"] == 2
    reasons = {item["path"]: item["error"] for item in stats["left_out"]["examples"]}
    assert set(reasons) == {"dog/truncated.png", "dog/junk.jpg"}
    assert reasons["dog/junk.jpg"] == "cannot decode: not a JPEG, PNG or BMP image (unrecognised content)"
    assert "BytesIO" not in reasons["dog/truncated.png"]
    assert not any(store.blobs.exists(hashlib.sha256(data).hexdigest())
                   for data in (good[: len(good) // 2], b"not an image at all"))
    assert {e["path"] for e in store.manifest(version)["entries"]}.isdisjoint(reasons)
    assert stats["modes"]["RGBA"] == 1 and stats["modes"]["L"] == 1 and stats["sizes"]["min_side"] == 8
    assert any("not .jpg" in note for note in version.source["notes"])
    assert any(note.startswith("left out 2 file(s) that cannot be decoded") for note in version.source["notes"])
    assert version.schema["channels"] == 3
    result = store.check(version)
    assert result and "2 file(s) could not be decoded and were left out" in str(result)
    x, _, _, paths = store.load_images(version, (16, 16), 3)
    rgba_index = paths.index("cat/rgba.png")
    assert (x[rgba_index] == 255).all()  # transparent became white, not black
    assert x.shape[0] == 14


def test_exeml_minimum_blocks_training(store, tmp_path, mnist_small):
    from modelyard.data.samples import write_image_folder

    x, y = mnist_small
    keep = np.concatenate([np.flatnonzero(y == 0)[:6], np.flatnonzero(y == 1)[:3]])
    version = store.import_path(write_image_folder(x[keep], y[keep], tmp_path / "few"), "few")
    result = store.check(version)
    assert not result and "needs at least 5 images per class; too few in 1 (3)" in str(result)
    single = store.import_path(write_image_folder(x[:6], np.zeros(6, dtype=int), tmp_path / "one"), "one")
    assert "needs at least 2 classes, has 1" in str(store.check(single))


def test_archives_import_and_path_traversal_is_refused(store, tmp_path, mnist_folder):
    archive = tmp_path / "mnist3.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(mnist_folder.rglob("*.png")):
            bundle.write(path, "wrapped/" + path.relative_to(mnist_folder).as_posix())
    assert store.import_path(archive, "zipped").items == 60
    tgz = tmp_path / "mnist3.tar.gz"
    with tarfile.open(tgz, "w:gz") as bundle:
        bundle.add(mnist_folder, arcname="mnist3")
    assert store.import_path(tgz, "tarred").items == 60

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("cats/ok.png", _png(np.zeros((8, 8), dtype=np.uint8)))
        bundle.writestr("../../escaped.png", b"x")
    with pytest.raises(InvalidInput, match=r"evil.zip: member '../../escaped.png' would be written outside"):
        store.import_path(evil, "evil")
    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as bundle:
        info = tarfile.TarInfo("cats/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(info)
    with pytest.raises(InvalidInput, match="is a link; refusing the archive"):
        store.import_path(evil_tar, "evil")
    assert not (tmp_path.parent / "escaped.png").exists()
    assert {d["name"] for d in store.list()} == {"zipped", "tarred"}
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InvalidInput, match="broken.zip: not a readable archive"):
        store.import_path(broken, "broken")


def test_label_csv_import_and_escaping_paths(store, tmp_path, mnist_folder):
    rows = ["path,label"] + [f"{p.relative_to(mnist_folder).as_posix()},{p.parent.name}"
                             for p in sorted(mnist_folder.rglob("*.png"))]
    listing = mnist_folder / "labels.csv"
    listing.write_text("\n".join(rows))
    try:
        version = store.import_path(listing, "listed")
        assert version.items == 60 and version.schema["classes"] == ["one", "two", "zero"]
        bad = mnist_folder / "bad.csv"
        bad.write_text("path,label\n../../etc/passwd.png,x\n")
        with pytest.raises(InvalidInput, match=r"bad.csv row 1: path '../../etc/passwd.png' must be relative"):
            store.import_path(bad, "bad")
        bad.unlink()
    finally:
        listing.unlink()


def test_skipped_files_are_counted_wherever_they_are(store, tmp_path, mnist_small):
    x, _ = mnist_small
    root = tmp_path / "digits"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.png").write_bytes(_png(x[i]))
    (root / "README.txt").write_text("about these digits")
    (root / "a" / "notes.txt").write_text("skipped too")
    (root / "loose.png").write_bytes(_png(x[0]))
    (root / ".hidden.txt").write_text("hidden files are not mentioned")
    notes = store.import_path(root, "digits").source["notes"]
    assert notes == ["skipped 2 file(s) that are not .jpg/.jpeg/.png/.bmp images: README.txt, a/notes.txt",
                     "skipped 1 image(s) directly in the root folder: images must sit in a folder per class"]


def test_empty_folder_and_single_image(store, tmp_path, mnist_folder):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="no images found"):
        store.import_path(tmp_path / "empty", "empty")
    with pytest.raises(InvalidInput, match="a single image is not a dataset"):
        store.import_path(next(mnist_folder.rglob("*.png")), "x")
    assert store.list() == []


def test_duplicates_and_near_duplicates(store, tmp_path, mnist_small):
    x, _ = mnist_small
    root = tmp_path / "dups"
    for label, offset in (("a", 0), ("b", 20)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            (root / label / f"{i}.png").write_bytes(_png(x[offset + i]))
    (root / "a" / "copy.png").write_bytes((root / "a" / "0.png").read_bytes())
    Image.fromarray(x[0]).save(root / "b" / "near.jpg", quality=90)  # same digit, re-encoded: near-duplicate
    stats = store.import_path(root, "dups").stats
    assert stats["duplicates"]["files"] == 1 and stats["duplicates"]["examples"] == [["a/0.png", "a/copy.png"]]
    assert any(set(pair) == {"a/0.png", "b/near.jpg"} for pair in stats["near_duplicates"]["examples"])
