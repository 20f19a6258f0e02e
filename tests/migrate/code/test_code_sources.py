"""Bad input: parse errors, binary / huge / non-UTF-8 files, symlink loops, unsafe archives, missing paths."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from modelyard.core.errors import InvalidInput, NotFound, PayloadTooLarge
from modelyard.migrate.code.analyze import analyze_path
from modelyard.migrate.code.sources import Limits, extract_archive, open_source

CORPUS = Path(__file__).parent / "code_corpus"


def test_python2_file_is_a_parse_error_and_the_scan_continues():
    analysis = analyze_path(CORPUS / "bad", "any")
    by_file = {r.path: r for r in analysis.files}
    legacy = by_file["legacy_py2.py"]
    assert legacy.parse_error and "line 4" in legacy.parse_error
    [finding] = legacy.findings
    assert (finding.rule, finding.line, finding.status) == ("parse-error", 4, "manual")
    assert [f.rule for f in by_file["good_neighbour.py"].findings] == ["cuda-synchronize"]
    assert analysis.file_dicts()[1]["parse_error"] == legacy.parse_error


def test_binary_huge_and_non_utf8_files(tmp_path):
    (tmp_path / "binary.py").write_bytes(b"\x00\x01torch.cuda.synchronize()\n")
    (tmp_path / "huge.py").write_text("x = 1\n" * 2000, encoding="utf-8")
    (tmp_path / "latin.py").write_bytes(b"# caf\xe9\nimport torch\ntorch.cuda.synchronize()\n")
    (tmp_path / "cookie.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nimport torch\ns = '\xe9'\nx = torch.zeros(1).cuda()\n"
    )
    analysis = analyze_path(tmp_path, "any", limits=Limits(max_file_bytes=4000))
    rules = {r.path: [f.rule for f in r.findings] for r in analysis.files}
    notes = {r.path: r.parse_error for r in analysis.files}
    assert rules["binary.py"] == ["file-skipped"] and "binary" in notes["binary.py"]
    assert rules["huge.py"] == ["file-skipped"] and "limit" in notes["huge.py"]
    assert rules["latin.py"] == ["file-decoded", "cuda-synchronize"]  # decoded with replacement, still scanned
    assert rules["cookie.py"] == ["cuda-method"]  # a PEP 263 cookie is honoured, no note


def test_symlink_loop_and_escaping_links_are_not_followed(tmp_path):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "a.py").write_text("import torch\ntorch.cuda.synchronize()\n", encoding="utf-8")
    outside = tmp_path / "outside.py"
    outside.write_text("import torch\ntorch.cuda.empty_cache()\n", encoding="utf-8")
    os.symlink(project, project / "pkg" / "loop")  # a folder link back to the root
    os.symlink(project / "pkg" / "self.py", project / "pkg" / "self.py")  # a link to itself
    os.symlink(outside, project / "escape.py")
    os.symlink(project / "pkg" / "a.py", project / "alias.py")  # inside the project: followed
    analysis = analyze_path(project, "any")
    notes = {r.path: r.parse_error for r in analysis.files if r.parse_error}
    assert notes["pkg/loop"].endswith("symlinked folder not followed")
    assert "loop" in notes["pkg/self.py"]
    assert "outside the project" in notes["escape.py"]
    scanned = {f.file for f in analysis.findings if f.rule == "cuda-synchronize"}
    assert scanned == {"pkg/a.py", "alias.py"}
    assert not any(f.rule == "cuda-memory-management" for f in analysis.findings)


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_archive_is_analysed_with_paths_relative_to_it(tmp_path):
    archive = _zip(tmp_path / "p.zip", {"proj/train.py": b"import torch\nx = torch.ones(1).cuda()\n",
                                         "proj/requirements.txt": b"torch==2.3.1+cu121\n"})
    analysis = analyze_path(archive, "any")
    assert {(f.file, f.rule) for f in analysis.findings} == {("proj/train.py", "cuda-method"),
                                                             ("proj/requirements.txt", "cuda-wheel-pin")}
    assert analysis.root == str(archive.resolve())


def test_tar_gz_archive_is_analysed(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "run.sh").write_text("nvidia-smi\n", encoding="utf-8")
    archive = tmp_path / "p.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(source / "run.sh", arcname="run.sh")
    assert [f.rule for f in analyze_path(archive, "any").findings] == ["nvidia-smi"]


@pytest.mark.parametrize("name", ["../evil.py", "/abs/evil.py", "a/../../evil.py", "..\\evil.py"])
def test_zip_with_escaping_entry_is_refused_before_writing(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", {"ok.py": b"x = 1\n", name: b"import os\n"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidInput, match="outside the archive folder"):
        extract_archive(archive, dest, Limits())
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.py").exists()


def test_tar_with_escaping_entry_and_links(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("../escape.py")
        info.size = 6
        tf.addfile(info, io.BytesIO(b"x = 1\n"))
    with pytest.raises(InvalidInput, match="outside the archive folder"):
        analyze_path(bad, "any")
    linked = tmp_path / "links.tar"
    with tarfile.open(linked, "w") as tf:
        link = tarfile.TarInfo("passwd.py")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
        code = tarfile.TarInfo("ok.py")
        data = b"import torch\ntorch.cuda.synchronize()\n"
        code.size = len(data)
        tf.addfile(code, io.BytesIO(data))
    analysis = analyze_path(linked, "any")
    notes = {r.path: r.parse_error for r in analysis.files}
    assert "link in archive" in notes["passwd.py"]
    assert [f.rule for f in analysis.findings if f.file == "ok.py"] == ["cuda-synchronize"]


def test_archive_size_limit(tmp_path):
    archive = _zip(tmp_path / "big.zip", {f"f{i}.py": b"x = 1\n" * 200 for i in range(5)})
    with pytest.raises(PayloadTooLarge):
        analyze_path(archive, "any", limits=Limits(max_total_bytes=2000))


def test_missing_path_and_unknown_file_type(tmp_path):
    with pytest.raises(NotFound, match="path not found"):
        analyze_path(tmp_path / "nope", "any")
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    with pytest.raises(InvalidInput, match="neither a project folder"):
        analyze_path(tmp_path / "notes.docx", "any")
    with pytest.raises(InvalidInput, match="unknown target"):
        analyze_path(tmp_path, "tpu")


def test_single_file_and_skipped_folders(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "hook.py").write_text("import torch\ntorch.cuda.synchronize()\n", encoding="utf-8")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "main.py").write_text("import torch\ntorch.cuda.synchronize()\n", encoding="utf-8")
    assert [f.file for f in analyze_path(tmp_path, "any").findings] == ["main.py"]
    single = analyze_path(tmp_path / "main.py", "any")
    assert [(f.file, f.line) for f in single.findings] == [("main.py", 2)]
    with open_source(tmp_path / "main.py") as tree:
        assert tree.single_file and [s.rel for s in tree.files] == ["main.py"]


def test_extracted_archive_is_cleaned_up(tmp_path):
    archive = _zip(tmp_path / "p.zip", {"a.py": b"x = 1\n"})
    with open_source(archive) as tree:
        root = tree.root
        assert (root / "a.py").exists()
    assert not root.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
