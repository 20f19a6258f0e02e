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
