"""What every exporter call needs: example inputs to trace with, and quiet exporters.

Shared by the conversion passes (``modelyard.migrate``) and model registration (``modelyard.registry``), which
both sit above ``runtime``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

# "" is the root logger, which onnxruntime.quantization logs to
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "nncf", "skl2onnx", "")


@contextlib.contextmanager
def quiet_exporters():
    """Silence exporter chatter (deprecation warnings, 'torchvision is not installed' log lines): callers record
    what matters (fallbacks, skipped steps) as notes on their results instead."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def example_inputs(spec, seed: int = 0) -> tuple:
    """Torch example inputs for tracing: named dims get at least 2 so export does not specialise them to 1."""
    import numpy as np
    import torch

    from modelyard.runtime.feeds import random_feeds

    dims = {name: max(2, value) for name, value in spec.dims.items()}
    for inp in spec.inputs:
        for d in inp.shape:
            if isinstance(d, str):
                dims.setdefault(d, 2)
    traced = spec.model_copy(update={"dims": dims}).with_base_dir(spec.base_dir)
    feeds = next(random_feeds(traced, 1, seed))
    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in spec.inputs)
