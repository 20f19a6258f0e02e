"""The tiny ladder the tune tests share: L0 (the tiny Llama), a corpus, an instruction set, L1 and L2."""

from __future__ import annotations

import json

import pytest

from modelyard.core.jobkind import LocalJobContext

DOMAIN = [f"Python function number {i} returns the list of keys of a dictionary sorted by value {i % 5}."
          for i in range(24)]
QA = [{"instruction": f"What does function {i} return?", "response": f"The sorted keys, number {i % 3}."}
      for i in range(12)]


@pytest.fixture(scope="session")
def ladder(tmp_path_factory, tiny_lm_dir):
    """One workspace with L0 registered, a corpus and an instruction set imported, L1 and L2 tuned: shared by the
    ladder's modules (the classify tests add their datasets and classifiers to it), so an L0 and an L1 are made once
    per session."""
    from modelyard.client import Client
    from modelyard.train.tune import TUNE, TuneSpec

    root = tmp_path_factory.mktemp("ladder")
    home = root / "home"
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "docs.txt").write_text("\n\n".join(DOMAIN + DOMAIN[:3]), encoding="utf-8")  # 3 duplicates
    qa = root / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in QA), encoding="utf-8")
    with Client(home=home) as client:
        l0 = client.models.register(str(tiny_lm_dir), "tiny", hf_task="text-generation")
        corpus_v = client.data.import_path(str(corpus), "corpus", kind="text")
        qa_v = client.data.import_path(str(qa), "qa", kind="text")
    options = {"steps": 6, "batch_size": 4, "learning_rate": 5e-3, "eval_every": 3, "checkpoint_every": 3,
               "max_length": 48}
    l1 = TUNE.run(TuneSpec(base="tiny@1", data="corpus@1", stage="pretrain", **options),
                  LocalJobContext(home=home, workdir=root / "w1"))
    l2 = TUNE.run(TuneSpec(base=l1["model"], data="qa@1", stage="sft", name="tiny-qa", **options),
                  LocalJobContext(home=home, workdir=root / "w2"))
    return {"home": home, "root": root, "l0": l0, "corpus": corpus_v, "qa": qa_v, "l1": l1, "l2": l2,
            "options": options, "domain": DOMAIN}
