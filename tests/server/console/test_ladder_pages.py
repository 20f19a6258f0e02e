"""The ladder page: language models listed, and one model's L0 -> L1 lineage drawn with its metrics and gate, from
the same document as its REST twin."""

from __future__ import annotations

import pytest


def _ladder(workspace, tiny_lm_dir):
    from modelyard.registry.foundation import prepare_foundation
    from modelyard.registry.versions import ModelRegistry, content_digest

    registry = ModelRegistry(workspace)
    prepared = prepare_foundation(tiny_lm_dir)
    files = {name: "sha256:" + workspace.blobs.put_file(path).digest for name, path in prepared.files.items()}
    l0 = registry.create_version("tiny", files, prepared.entry, prepared.source_format,
                                 tags={"kind": "foundation", "license": "apache-2.0"})
    adapter = {"adapter_config.json": "sha256:" + workspace.blobs.put_bytes(b'{"peft_type": "LORA"}').digest}
    evaluation = {"domain_ppl_before": 30.0, "domain_ppl_after": 12.0, "domain_ppl_drop": 0.6,
                  "general_ppl_before": 20.0, "general_ppl_after": 22.0, "general_ppl_rise": 0.1}
    lineage = {"ladder": {"level": "L1", "stage": "pretrain", "dataset": {"ref": "docs@1"}, "evaluation": evaluation,
                          "base": {"ref": l0.ref, "id": l0.id, "digest": content_digest(l0.files)},
                          "gate": {"name": "forgetting", "max_general_ppl_rise": 0.05, "general_ppl_rise": 0.1,
                                   "passed": False}}}
    l1 = registry.create_version("<tiny-docs>".strip("<>"), adapter, "adapter_config.json", "tune",
                                 tags={"level": "L1", "gate": "failed"}, lineage=lineage)
    return l0, l1


@pytest.mark.slow  # builds the tiny language model and stores it
def test_ladder_page_draws_the_lineage_with_metrics_and_gate(as_role, sqlite_workspace, tiny_lm_dir):
    l0, l1 = _ladder(sqlite_workspace, tiny_lm_dir)
    browser = as_role("viewer")
    listing = browser.get("/ladder")
    assert listing.status_code == 200 and "tiny@1" in listing.text and "tiny-docs@1" in listing.text
    page = browser.get("/ladder", params={"ref": "tiny-docs@1"})
    assert page.status_code == 200
    html = page.text
    assert html.index("<strong>L0</strong>") < html.index("<strong>L1</strong>")
    assert "license apache-2.0" in html and "pretrain on docs@1" in html
    assert "FAILED" in html and "10.0 % rise" in html
    rest = browser.get("/api/v1/models/tiny-docs/versions/1/ladder", headers={"Authorization":
                                                                               f"Bearer {browser.secret}"})
    assert rest.status_code == 200 and [lv["ref"] for lv in rest.json()["levels"]] == [l0.ref, l1.ref]
    missing = browser.get("/ladder", params={"ref": "nope@1"})
    assert missing.status_code == 404


@pytest.mark.slow  # builds the tiny language model and stores it
def test_tune_form_starts_the_job_the_api_starts_and_refuses_bad_fields_on_the_page(as_role, sqlite_workspace,
                                                                                    tiny_lm_dir, tmp_path):
    from console_support import csrf_of, linear_onnx

    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.registry.versions import ModelRegistry

    l0, _ = _ladder(sqlite_workspace, tiny_lm_dir)
    (tmp_path / "docs.txt").write_text("One paragraph about lists.\n\nAnother about files.\n", encoding="utf-8")
    DatasetStore(sqlite_workspace).import_path(tmp_path / "docs.txt", "docs", kind="text")
    onnx = {"model.onnx": "sha256:" + sqlite_workspace.blobs.put_file(linear_onnx(tmp_path / "m.onnx")).digest}
    ModelRegistry(sqlite_workspace).create_version(
        "topic-clf", onnx, "model.onnx", "tune", tags={"kind": "tuned", "level": "L2", "stage": "classify"},
        lineage={"ladder": {"level": "L2", "stage": "classify", "base": {"ref": l0.ref, "id": l0.id},
                            "evaluation": {"accuracy": 0.75, "accuracy_before": 0.3}}})
    editor = as_role("editor")
    page = editor.get("/ladder")
    assert 'id="tune-form"' in page.text and '<option value="classify">' in page.text
    assert "<option>tiny@1</option>" in page.text and "<option>docs@1</option>" in page.text
    assert "<option>tiny-docs@1</option>" not in page.text  # its forgetting gate failed: no base
    assert "topic-clf@1" in page.text and "classify" in page.text  # the L2 classifier is on the ladder
    assert "accuracy" in editor.get("/ladder", params={"ref": "topic-clf@1"}).text
    form = {"csrf": csrf_of(page.text), "base": "tiny@1", "data": "docs@1", "stage": "pretrain", "method": "lora",
            "steps": "3", "learning_rate": "0.001", "name": ""}
    answer = editor.post("/ladder/tune", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    job = JobQueue(sqlite_workspace).get(answer.headers["location"].split("?")[0].rsplit("/", 1)[-1])
    assert answer.headers["location"].startswith(f"/jobs/{job.id}")
    assert job.kind == "tune" and job.owner == "editor-user"
    assert job.spec["steps"] == 3 and job.spec["learning_rate"] == 0.001 and job.spec["stage"] == "pretrain"
    for field, value, message in (("steps", "many", "not a whole number"), ("steps", "0", "steps"),
                                  ("stage", "dpo", "stage"), ("data", "nope@1", "nope"),
                                  ("base", "tiny-docs@1", "forgetting gate")):
        refused = editor.post("/ladder/tune", data={**form, field: value})
        assert refused.status_code in (404, 422) and message in refused.text, (field, refused.text)
    viewer = as_role("viewer")
    assert 'id="tune-form"' not in viewer.get("/ladder").text
    assert viewer.post("/ladder/tune", data={**form, "csrf": csrf_of(viewer.get("/").text)}).status_code == 403
