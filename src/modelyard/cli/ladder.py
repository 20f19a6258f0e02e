"""``modelyard ladder tune`` (shortcut ``modelyard tune``) and ``modelyard ladder show``: fine-tuning language models
from L0 to L1 to L2 as ``tune`` jobs, and the ladder a model stands on."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json
from modelyard.cli.automl import finish, run_job

app = typer.Typer(no_args_is_help=True)


@app.command("tune")
def tune_command(
    base: Annotated[str, typer.Argument(help="The model to start from, NAME@VERSION: a foundation model (registered "
                                             "from a .gguf or an HF folder with --task text-generation) or a tuned "
                                             "one whose forgetting gate passed.")],
    data: Annotated[str, typer.Option("--data", help="A text dataset version, NAME@VERSION.")],
    stage: Annotated[str, typer.Option(
        "--stage", help="pretrain (corpus -> L1), sft (instruction/response -> L2) or classify (text/label -> an L2 "
                        "classifier, ONNX).")] = "pretrain",
    method: Annotated[str, typer.Option("--method", help="lora or full.")] = "lora",
    output: Annotated[str | None, typer.Option("--output", help="adapter (LoRA default) or merged.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model to register (default BASE-STAGE).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 4,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="Default 2e-4 (LoRA), 2e-5 "
                                                        "(full).")] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per example.")] = 128,
    lora_r: Annotated[int, typer.Option("--lora-r")] = 8,
    eval_items: Annotated[int, typer.Option("--eval-items", help="Validation texts evaluated (at most).")] = 64,
    max_general_ppl_rise: Annotated[float, typer.Option("--max-general-ppl-rise", help="The forgetting gate: the "
                                                        "largest allowed rise of general perplexity.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and print the job id.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.tune/1 result.")] = False,
) -> None:
    """Fine-tune a language model as a tune job: tracked loss, held-out and general perplexity, forgetting gate,
    lineage by content hash; registers the result."""
    spec = {"base": base, "data": data, "stage": stage, "method": method, "output": output, "name": name,
            "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "max_length": max_length,
            "lora_r": lora_r, "eval_items": eval_items, "max_general_ppl_rise": max_general_ppl_rise, "seed": seed}
    with get_client() as client:
        job = run_job(client, "tune", spec, quiet=as_json, wait=not no_wait)
    if no_wait:
        if as_json:
            print_json(job)
        else:
            console.print(f"{job['id']} queued; follow it with 'modelyard jobs wait {job['id']}'", highlight=False)
        return
    result = finish(job)
    if as_json:
        print_json(result)
        return
    ev, gate = result["evaluation"], result["gate"]
    if result["stage"] == "classify":
        console.print(f"[bold]{result['model'] or '(not registered)'}[/] (L2 classifier of {len(ev['classes'])} "
                      f"classes) from {result['base']} on {result['data']}: loss {result['losses'][0]:.3f} -> "
                      f"{result['losses'][-1]:.3f}; held-out accuracy {ev['accuracy_before']:.3f} -> "
                      f"{ev['accuracy']:.3f} on {ev['validation_items']} texts (majority class "
                      f"{ev['majority_accuracy']:.3f})", highlight=False)
        return
    console.print(f"[bold]{result['model'] or '(not registered)'}[/] ({result['level']} {result['stage']}, "
                  f"{result['output']}) from {result['base']} on {result['data']}: loss {result['losses'][0]:.3f} -> "
                  f"{result['losses'][-1]:.3f}; domain perplexity {ev['domain_ppl_before']:.2f} -> "
                  f"{ev['domain_ppl_after']:.2f} ({ev['domain_ppl_drop']:+.1%} drop); general "
                  f"{ev['general_ppl_before']:.2f} -> {ev['general_ppl_after']:.2f} ({ev['general_ppl_rise']:+.1%}); "
                  f"forgetting gate {'passed' if gate['passed'] else 'FAILED'} "
                  f"(max {gate['max_general_ppl_rise']:.0%})",
                  highlight=False)


@app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="A registered language model, NAME@VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.ladder/1 document.")] = False,
) -> None:
    """The ladder under a model: each level from L0 up, with its digest, dataset, metrics and gate."""
    with get_client() as client:
        ladder = client.ladder.lineage(ref)
    if as_json:
        print_json(ladder)
        return
    for level in ladder["levels"]:
        gate = level.get("gate")
        gate_text = "" if not gate else f", gate {'passed' if gate['passed'] else 'FAILED'}"
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in level.get("metrics", {}).items())
        console.print(f"{level['level']} [bold]{level['ref']}[/] ({level['format']}) {level['digest'][:19]}"
                      f"{' on ' + level['dataset'] if level.get('dataset') else ''}{gate_text}"
                      f"{'; ' + metrics if metrics else ''}", highlight=False)
