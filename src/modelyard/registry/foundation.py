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


# GGUF value types: (struct format, size) of the fixed-size ones; 8 is a string, 9 an array
_GGUF_SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
                 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
GGUF_GENERAL_KEYS = ("general.name", "general.license", "general.architecture", "general.file_type")


def _gguf_metadata(path: Path) -> dict:
    """The GGUF header's general.* fields (name, license, architecture, file type), read without the weights.

    NOTE: a small reader of the key/value section rather than gguf's ``GGUFReader``: that one builds a numpy view for
    every field part, the tokenizer's ~50k vocabulary strings included, which took 10-80 s of the demo's
    ``models register`` on 2 cores for four short strings; this one steps over arrays by their lengths."""
    import struct

    def read(fh, size: int) -> bytes:
        data = fh.read(size)
        if len(data) != size:
            raise InvalidInput(f"{path.name} is not a readable GGUF file: the header ends early")
        return data

    def unpack(fh, fmt: str, size: int):
        return struct.unpack(fmt, read(fh, size))[0]

    def string(fh) -> bytes:
        size = unpack(fh, "<Q", 8)
        if size > 1 << 30:
            raise InvalidInput(f"{path.name} is not a readable GGUF file: a {size}-byte string in its header")
        return read(fh, size)

    def value(fh, kind: int, keep: bool):
        if kind in _GGUF_SCALARS:
            return unpack(fh, *_GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string(fh).decode("utf-8", "replace") if keep else fh.seek(unpack(fh, "<Q", 8), 1)
        if kind == _GGUF_ARRAY:
            item, count = unpack(fh, "<I", 4), unpack(fh, "<Q", 8)
            if item in _GGUF_SCALARS:
                fh.seek(count * _GGUF_SCALARS[item][1], 1)
            else:
                for _ in range(count):
                    value(fh, item, False)
            return None
        raise InvalidInput(f"{path.name} is not a readable GGUF file: unknown value type {kind} in its header")

    meta = {}
    with path.open("rb") as fh:
        if read(fh, 4) != b"GGUF":
            raise InvalidInput(f"{path.name} is not a GGUF file (no GGUF magic)")
        version = unpack(fh, "<I", 4)
        if version < 2:
            raise InvalidInput(f"{path.name} is GGUF version {version}; only versions 2 and later are read")
        _tensors, pairs = unpack(fh, "<Q", 8), unpack(fh, "<Q", 8)
        for _ in range(pairs):
            key = string(fh).decode("utf-8", "replace")
            kind = unpack(fh, "<I", 4)
            wanted = key in GGUF_GENERAL_KEYS
            found = value(fh, kind, wanted)
            if wanted:
                meta[key.split(".", 1)[1]] = found
                if len(meta) == len(GGUF_GENERAL_KEYS):
                    break
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
