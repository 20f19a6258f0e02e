"""Hugging Face model folders into the registry: converted to ONNX by the migration passes and verified by the compare
engine before anything is uploaded, with the tokenizer or image preprocessor kept beside the model.

A folder holds ``config.json``, ``model.safetensors`` and, for text, the tokenizer files (``tokenizer.json`` ...),
for images ``preprocessor_config.json``. Nothing is downloaded (``local_files_only``, ``HF_HUB_OFFLINE``) and models
that need their own code are refused.

- text: the ONNX model takes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes
  them) ``[batch, sequence]`` int64; the tokenizer files are stored under ``tokenizer/`` and the signature's
  preprocessing says ``{"text": {...}}``, so a service can accept raw strings;
- images: ``pixel_values [batch, 3, H, W]`` float32; the preprocessor's size, rescale factor, mean and std become the
  version's image preprocessing, so a service accepts PNG/JPEG as it does for any image model.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.registry.formats import Prepared
from modelyard.runtime.zoo import HF_TASKS

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
                   "vocab.json", "sentencepiece.bpe.model", "spiece.model")


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (
        any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file())


def _image_preprocessing(folder: Path) -> tuple[dict, tuple[int, int]]:
    try:
        config = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{folder.name}: an image model needs its preprocessor_config.json (size, mean, std)") \
            from None
    size = config.get("size") or {}
    if isinstance(size, int):
        height = width = size
    elif "height" in size and "width" in size:
        height, width = int(size["height"]), int(size["width"])
    elif "shortest_edge" in size:
        height = width = int(size["shortest_edge"])
    else:
        raise InvalidInput(f"{folder.name}/preprocessor_config.json: unreadable size {size!r}")
    pre = {"size": [height, width], "scale": float(config.get("rescale_factor", 1 / 255)) if config.get(
        "do_rescale", True) else 1.0, "layout": "NCHW"}
    if config.get("do_normalize", True):
        pre["mean"] = [float(v) for v in config.get("image_mean", [0.0, 0.0, 0.0])]
        pre["std"] = [float(v) for v in config.get("image_std", [1.0, 1.0, 1.0])]
    return pre, (height, width)


def _text_inputs(folder: Path, max_length: int) -> tuple[list[dict], dict, dict[str, Path]]:
    from transformers import AutoTokenizer

    files = {f"tokenizer/{name}": folder / name for name in TOKENIZER_FILES if (folder / name).is_file()}
    if not files:
        raise InvalidInput(f"{folder.name}: a text model needs its tokenizer files (tokenizer.json or vocab.txt ...)")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    inputs = [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64",
               "range": [0, max(1, tokenizer.vocab_size - 1)] if n == "input_ids" else [0, 1]} for n in names]
    pre = {"text": {"tokenizer": "tokenizer", "max_length": max_length, "inputs": names,
                    "fast": bool(getattr(tokenizer, "is_fast", False))}}
    return inputs, pre, files


def _text_samples(spec, path: Path, samples: int, length: int = 16) -> Path:
    """Token sequences as a tokenizer makes them (every position attended, ids inside the vocabulary): random
    attention masks, as random feeds would give, are inputs no tokenizer produces and make the comparison noisy."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for inp in spec.inputs:
        if inp.name == "input_ids":
            arrays[inp.name] = rng.integers(0, int(inp.range[1]) + 1, size=(samples, 1, length), dtype=np.int64)
        elif inp.name == "attention_mask":
            arrays[inp.name] = np.ones((samples, 1, length), dtype=np.int64)
        else:
            arrays[inp.name] = np.zeros((samples, 1, length), dtype=np.int64)
    np.savez(path, **arrays)
    return path


def prepare_hf(folder: str | Path, workdir: Path, task: str, *, max_length: int = 128, samples: int = 4) -> Prepared:
    """Convert the folder's model to ONNX with the ``torch-to-onnx`` pass, compare it with the PyTorch model on
    ``samples`` feeds (refused unless the compare engine passes it), and return it ready to register."""
    from modelyard.migrate.model.compare import compare_models
    from modelyard.migrate.model.passes import convert
    from modelyard.runtime.spec import ModelSpec

    folder = Path(folder).expanduser().resolve()
    if task not in HF_TASKS:
        raise InvalidInput(f"a Hugging Face folder needs --task: one of {', '.join(HF_TASKS)}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder.name}/config.json is not readable JSON: {type(exc).__name__}") from None
    if config.get("auto_map"):
        raise InvalidInput(f"{folder.name} needs its own Python code (auto_map in config.json); Modelyard does not run "
                           "remote code")
    is_image = task == "image-classification" or (task == "feature-extraction"
                                                  and (folder / "preprocessor_config.json").is_file()
                                                  and not (folder / "tokenizer_config.json").is_file())
    files: dict[str, Path] = {}
    if is_image:
        image_pre, (height, width) = _image_preprocessing(folder)
        channels = int(config.get("num_channels", 3))
        inputs = [{"name": "pixel_values", "shape": ["batch", channels, height, width], "dtype": "float32",
                   "range": [-2.0, 2.0]}]
        preprocessing = {"input": "pixel_values", **image_pre}
    else:
        inputs, preprocessing, files = _text_inputs(folder, max_length)
    outputs = ["embedding"] if task == "feature-extraction" else ["logits"]
    task_spec: dict = {"type": "embedding" if task == "feature-extraction" else "classification"}
    labels = config.get("id2label") or {}
    if task != "feature-extraction" and labels:
        task_spec["classes"] = [labels[k] for k in sorted(labels, key=int)]
    spec = ModelSpec.model_validate({
        "name": folder.name, "entrypoint": "modelyard.runtime.zoo:hf_local",
        "kwargs": {"path": str(folder), "task": task}, "inputs": inputs, "outputs": outputs,
        "dims": {"batch": 2, "sequence": min(16, max_length)}, "task": task_spec,
    })
    target = workdir / "model.onnx"
    converted = convert(spec, "onnx", target, cache_dir=None)
    data = None if is_image else _text_samples(spec, workdir / "compare-samples.npz", samples)
    verdict = compare_models(spec, "torch:cpu", "onnxruntime:cpu", target_model=target, samples=samples, data=data,
                             work_dir=workdir / "compare")
    if not verdict:
        raise InvalidInput(f"{folder.name}: the ONNX export does not match the PyTorch model "
                           f"({'; '.join(verdict.reasons) or verdict.verdict}); not registered")
    compared = [{k: o.get(k) for k in ("name", "verdict", "sqnr_db", "cosine", "max_abs_err")}
                for o in verdict.to_dict()["outputs"]]
    notes = [f"Hugging Face {config.get('model_type', '?')} ({task}) from {folder.name}, converted by "
             f"{' -> '.join(s.pass_name for s in converted.steps) or 'torch-to-onnx'}",
             f"compare torch:cpu vs onnxruntime:cpu on {samples} samples: pass"]
    metadata = {"huggingface": {"task": task, "model_type": config.get("model_type"),
                                "architectures": config.get("architectures"),
                                "compare": {"verdict": verdict.verdict, "samples": samples, "outputs": compared}}}
    return Prepared({"model.onnx": target, **files}, "model.onnx", "onnx", "huggingface", preprocessing, task_spec,
                    notes=notes, source=str(folder), metadata=metadata)
