"""The model card: a Markdown page generated once, when a version is registered, and stored with it (a version
never changes, so neither does its card). Aliases move, so they are not on the card."""

from __future__ import annotations

import json

from modelyard.registry.signature import Signature

_SOURCE_NAMES = {
    "onnx": "an ONNX file", "openvino": "an OpenVINO IR", "torch": "a PyTorch model (exported to ONNX)",
    "sklearn": "a scikit-learn estimator (converted to ONNX)", "lightgbm": "a LightGBM model (converted to ONNX)",
}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def render_card(
    name: str,
    version: int,
    fmt: str,
    source_format: str,
    files: dict[str, dict],
    signature: Signature,
    metrics: dict[str, float],
    tags: dict[str, str],
    lineage: dict,
    description: str,
    created_by: str,
    created_at: str,
) -> str:
    """Markdown for one version: what it is, what it eats and returns, how good it is, where it came from."""
    lines = [f"# {name} @ {version}", ""]
    if description:
        lines += [description, ""]
    lines += [
        f"Registered {created_at} by {created_by or 'unknown'} from {_SOURCE_NAMES.get(source_format, source_format)};"
        f" stored and served as **{fmt}**.",
        "",
        "## Signature",
        "",
    ]
    rows = [("input", t.name, t.dtype, t.describe_shape()) for t in signature.inputs]
    rows += [("output", t.name, t.dtype, t.describe_shape()) for t in signature.outputs]
    lines += _table(("", "name", "dtype", "shape"), rows)
    lines += ["", "Requests are batched on the first dimension." if signature.batchable
              else "The first dimension is fixed: requests are not batched together.", ""]
    if signature.text:
        text = signature.text
        lines += ["### Text input", "",
                  f"Strings are tokenized with the stored tokenizer (`{text['tokenizer']}/`, at most "
                  f"{text['max_length']} tokens) into {', '.join(f'`{n}`' for n in text['inputs'])}.", ""]
    elif signature.preprocessing:
        pre = signature.preprocessing
        lines += ["### Image input", "",
                  f"PNG/JPEG bytes feed `{pre['input']}`: resized to {pre.get('size') or 'the input size'}, "
                  f"scaled by {pre['scale']:.6g}, mean {pre['mean']}, std {pre['std']}, layout {pre['layout']}.", ""]
    if signature.task:
        lines += [f"Task: **{signature.task['type']}**"
                  + (f" (output `{signature.task['output']}`)" if signature.task.get("output") else ""), ""]
    lines += ["## Metrics", ""]
    lines += _table(("metric", "value"), [(k, f"{v:.6g}") for k, v in sorted(metrics.items())]) if metrics \
        else ["No metrics recorded."]
    lines += ["", "## Tags", ""]
    lines += _table(("tag", "value"), sorted(tags.items())) if tags else ["No tags."]
    lines += ["", "## Lineage", ""]
    if lineage:
        lines += ["```json", json.dumps(lineage, indent=2, sort_keys=True, default=str), "```"]
    else:
        lines += ["Registered directly from files; no job or dataset recorded."]
    lines += ["", "## Files", ""]
    lines += _table(("file", "size", "sha256"), [(n, _size(f["size"]), f["digest"].removeprefix("sha256:")[:16] + "…")
                                                 for n, f in sorted(files.items())])
    lines += ["", "## Use it", "", "```bash",
              f"modelyard deploy {name}@{version} --name {name.replace('.', '-')}",
              f"modelyard batch {name}@{version} --input DATA --output predictions.parquet",
              "```", ""]
    return "\n".join(lines)
