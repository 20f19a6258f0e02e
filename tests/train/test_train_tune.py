"""The ladder on a tiny Llama: register an L0, import text, tune L1 (LoRA, pretrain) and L2 (sft) with lineage by
content hash, the forgetting gate, and resume from a checkpoint."""

from __future__ import annotations

import json

import pytest

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.core.jobkind import LocalJobContext

pytestmark = pytest.mark.slow  # trains a tiny language model several times (the ladder: tests/train/conftest.py)

def test_foundation_is_registered_as_its_files_with_license_and_digest(ladder):
    l0 = ladder["l0"]
    assert l0["format"] == "hf" and l0["entry"] == "config.json"
    assert l0["tags"]["kind"] == "foundation" and l0["tags"]["license"] == "apache-2.0"
    assert "model.safetensors" in l0["files"] and "tokenizer.json" in l0["files"]
    assert l0["digest"].startswith("sha256:")


def test_text_dataset_has_stats_dedup_and_split(ladder):
    corpus = ladder["corpus"]
    assert corpus["kind"] == "text" and corpus["stats"]["duplicates_removed"] == 3
    assert corpus["items"] == len(ladder["domain"]) and corpus["stats"]["tokens"] > 0
    assert corpus["split"]["counts"]["validation"] > 0
    assert ladder["qa"]["data_schema"]["layout"] == "instruction"


def test_l1_pretrain_lowers_domain_perplexity_and_records_its_gate(ladder):
    l1 = ladder["l1"]
    assert l1["level"] == "L1" and l1["output"] == "adapter" and len(l1["losses"]) == 6
    assert l1["evaluation"]["domain_ppl_after"] < l1["evaluation"]["domain_ppl_before"]
    gate = l1["gate"]
    assert gate["name"] == "forgetting" and gate["max_general_ppl_rise"] == 0.05
    assert gate["passed"] == (gate["general_ppl_rise"] <= 0.05)


def test_l2_takes_its_bases_general_perplexity_from_the_bases_own_tune(ladder):
    from modelyard.client import Client
    from modelyard.registry.ladder import chain_of, load_chain
    from modelyard.registry.refs import parse_ref
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.causal_lm import perplexity
    from modelyard.train.tune import _recorded_general_ppl, general_texts

    l1, l2 = ladder["l1"]["evaluation"], ladder["l2"]["evaluation"]
    assert l1["general_ppl_before_from"] == "measured"  # L0 has no tune of its own
    assert l2["general_ppl_before_from"] == "the base's own tune"
    assert l2["general_ppl_before"] == l1["general_ppl_after"]
    with Client(home=ladder["home"]) as client:
        registry = ModelRegistry(client._workspace)
        version = registry.get_version(parse_ref(ladder["l1"]["model"]))
        # the merged L1 that L2 starts from measures what L1's tune recorded (up to float rounding)
        measured = perplexity(load_chain(registry, chain_of(registry, version)), general_texts(), 48)
        assert measured == pytest.approx(l1["general_ppl_after"], rel=1e-4)
        assert _recorded_general_ppl(version, 48) == l1["general_ppl_after"]
        assert _recorded_general_ppl(version, 64) is None  # another length: measured afresh


def test_l2_lineage_names_l1_and_l0_by_content_hash(ladder):
    from modelyard.client import Client

    with Client(home=ladder["home"]) as client:
        l1 = client.models.version(ladder["l1"]["model"])
        l2 = client.models.version(ladder["l2"]["model"])
    ladder_l2 = l2["lineage"]["ladder"]
    assert l2["format"] == "peft" and ladder_l2["level"] == "L2"
    assert [c["digest"] for c in ladder_l2["chain"]] == [ladder["l0"]["digest"], l1["digest"]]
    assert ladder_l2["base"] == {"ref": l1["ref"], "id": l1["id"], "digest": l1["digest"], "level": "L1",
                                 "format": "peft"}
    assert ladder_l2["dataset"]["digest"] == ladder["qa"]["manifest"]
    assert ladder_l2["hyperparameters_digest"].startswith("sha256:")


def _gate_failed_base(home, root):
    """An L1 whose gate failed: tuned hard on one repeated junk string, it forgets English."""
    from modelyard.client import Client
    from modelyard.train.tune import TUNE, TuneSpec

    junk = root / "junk.jsonl"
    junk.write_text("".join(json.dumps({"text": "zq " * (8 + i)}) + "\n" for i in range(8)), encoding="utf-8")
    with Client(home=home) as client:
        client.data.import_path(str(junk), "junk", kind="text")
    return TUNE.run(TuneSpec(base="tiny@1", data="junk@1", stage="pretrain", name="tiny-forgetful", steps=4,
                             method="full", learning_rate=0.01, max_length=48),
                    LocalJobContext(home=home, workdir=root / "w3"))


def test_a_failed_forgetting_gate_refuses_the_model_as_a_base(ladder):
    from modelyard.train.tune import TUNE, TuneSpec

    result = _gate_failed_base(ladder["home"], ladder["root"])
    assert result["output"] == "merged" and not result["gate"]["passed"], result["evaluation"]
    with pytest.raises(InvalidInput, match="forgetting gate"):
        TUNE.run(TuneSpec(base=result["model"], data="qa@1", stage="sft", steps=1),
                 LocalJobContext(home=ladder["home"], workdir=ladder["root"] / "w4"))


def test_resume_from_checkpoint_gives_the_same_result(ladder):
    from modelyard.train.tune import TUNE, TuneSpec

    spec = TuneSpec(base="tiny@1", data="corpus@1", stage="pretrain", name="tiny-resumed", register_model=False,
                    **ladder["options"])

    def crash(fraction, _message):
        if fraction >= 4 / 6:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        TUNE.run(spec, LocalJobContext(home=ladder["home"], workdir=ladder["root"] / "w5", on_progress=crash))
    context = LocalJobContext(home=ladder["home"], workdir=ladder["root"] / "w6")
    resumed = TUNE.run(spec, context)
    assert any("resumed from checkpoint at step 3" in line for line in context.lines)
    assert len(resumed["losses"]) == 3
    assert resumed["losses"] == pytest.approx(ladder["l1"]["losses"][3:], rel=1e-4)


def test_tune_refuses_a_table_dataset_and_sft_on_plain_text(ladder):
    from modelyard.train.tune import TUNE, TuneSpec

    with pytest.raises(ModelyardError, match="instruction/response"):
        TUNE.run(TuneSpec(base="tiny@1", data="corpus@1", stage="sft", steps=1),
                 LocalJobContext(home=ladder["home"], workdir=ladder["root"] / "w7"))


def test_ladder_document_shows_l0_l1_l2_with_gates_over_rest_and_cli(ladder):
    from typer.testing import CliRunner

    from modelyard.cli.main import app
    from modelyard.client import Client

    with Client(home=ladder["home"]) as client:
        document = client.ladder.lineage(ladder["l2"]["model"])
    assert document["schema"] == "modelyard.ladder/1"
    assert [lv["level"] for lv in document["levels"]] == ["L0", "L1", "L2"]
    assert document["levels"][0]["license"] == "apache-2.0" and document["levels"][1]["gate"]["name"] == "forgetting"
    assert document["levels"][2]["dataset"] == "qa@1" and "domain_ppl_drop" in document["levels"][2]["metrics"]
    shown = CliRunner().invoke(app, ["--home", str(ladder["home"]), "ladder", "show", ladder["l2"]["model"]])
    assert shown.exit_code == 0, shown.output
    assert "L0 tiny@1" in shown.output and "L2 tiny-qa@1" in shown.output
    refused = CliRunner().invoke(app, ["--home", str(ladder["home"]), "tune", "tiny@1", "--data", "nope@1"])
    assert refused.exit_code != 0 and "dataset 'nope' not found" in str(refused.exception)
