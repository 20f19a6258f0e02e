"""Foundation language models (L0) from local files: a Hugging Face folder (``config.json``, ``*.safetensors``, the
tokenizer files) or one GGUF file, stored as they are (format ``hf`` or ``gguf``) and served with transformers.

Nothing is downloaded and nothing is converted here: the files are checked (no remote code, weights present, a
tokenizer beside an HF folder) and registered with the license they declare. Loading them is
:mod:`modelyard.runtime.causal_lm`'s business.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.registry.formats import Prepared

HF_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja",
                  "model.safetensors.index.json", "added_tokens.json")
GENERATION_TASK = "text-generation"
# an encoder (MiniLM, BERT) kept as its files: a base for the classify stage of tune
FOUNDATION_TASKS = (GENERATION_TASK, "foundation")


def _gguf_metadata(path: Path) -> dict:
    """The GGUF header's general.* fields (name, license, architecture), read without loading the weights."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return {}
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - gguf raises ValueError/struct.error on a damaged header
        raise InvalidInput(f"{path.name} is not a readable GGUF file: {type(exc).__name__}") from None
    meta = {}
    for key in ("general.name", "general.license", "general.architecture", "general.file_type"):
        fld = reader.fields.get(key)
        if fld is None:
            continue
        value = fld.parts[fld.data[0]]
        meta[key.split(".", 1)[1]] = bytes(value).decode("utf-8", "replace") if value.dtype.kind == "u" and \
            value.dtype.itemsize == 1 else value.tolist()[0]
    return meta


def is_gguf(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".gguf"


def prepare_foundation(path: str | Path, license: str | None = None) -> Prepared:
    """A GGUF file or a Hugging Face causal-LM folder as files to store.

    Args:
        path: ``*.gguf`` or a folder with ``config.json``, ``*.safetensors`` and tokenizer files.
        license: the license to record; default what the files declare (GGUF ``general.license``, or the
            ``license`` in an HF folder's README front matter), else ``unknown``.
    """
    from modelyard.runtime.causal_lm import check_local_config

    p = Path(path).expanduser().resolve()
    if is_gguf(p):
        meta = _gguf_metadata(p)
        with p.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise InvalidInput(f"{p.name} is not a GGUF file (no GGUF magic)")
        chosen = license or str(meta.get("license") or "unknown")
        return Prepared({p.name: p}, p.name, "gguf", "gguf", task=None, source=str(p),
                        notes=[f"GGUF {meta.get('architecture', '?')} model {meta.get('name', p.stem)}"],
                        metadata={"foundation": {"kind": "foundation", "license": chosen, "gguf": meta}})
    if not p.is_dir() or not (p / "config.json").is_file():
        raise InvalidInput(f"{p.name}: a foundation model is a .gguf file or a Hugging Face folder with config.json")
    check_local_config(p)
    if not any((p / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise InvalidInput(f"{p.name}: a language model needs its tokenizer files here (tokenizer.json ...); "
                           "Modelyard never downloads them")
    config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    files = {name: p / name for name in HF_MODEL_FILES if (p / name).is_file()}
    files.update({f.name: f for f in sorted(p.glob("*.safetensors"))})
    chosen = license or _readme_license(p) or "unknown"
    return Prepared(files, "config.json", "hf", "huggingface", source=str(p),
                    notes=[f"Hugging Face {config.get('model_type', '?')} foundation model from {p.name}"],
                    metadata={"foundation": {"kind": "foundation", "license": chosen,
                                             "model_type": config.get("model_type"),
                                             "architectures": config.get("architectures")}})


def _readme_license(folder: Path) -> str | None:
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    for line in text.split("---", 2)[1].splitlines():
        if line.strip().startswith("license:"):
            return line.split(":", 1)[1].strip() or None
    return None
