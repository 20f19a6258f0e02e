"""Which backends serve a device: the one policy that coverage, compare, optimise and deploy ask.

A *target* is a device (``cpu``, ``cuda``, ``npu``, ``gpu``) or one ``backend:device``. Each device has one row,
``DEVICES``, that names its backends in order of preference (the most specialised runtime first) and, from that
same row, the backend each question is answered on:

============  ===========================================  ================  ================
device        backends (search order)                       check             coverage
============  ===========================================  ================  ================
cpu           openvino:cpu, onnxruntime:cpu                  onnxruntime:cpu   openvino:cpu
cuda          onnxruntime:tensorrt, onnxruntime:cuda         onnxruntime:cuda  onnxruntime:cuda
npu           onnxruntime:cann, openvino:npu                 onnxruntime:cann  npu (knowledge)
gpu           openvino:gpu                                   openvino:gpu      openvino:gpu
============  ===========================================  ================  ================

* ``backends`` (the optimiser's search): every backend worth trying on the device, likely fastest first.
* ``check`` (the pipeline's fp32 compare): the device's *portable* runtime, ONNX Runtime with the device's execution
  provider where there is one: a precision check should measure the conversion, not a vendor's fusions. When it is
  missing here the check runs on ``PORTABLE`` (``onnxruntime:cpu``) and says so.
* ``coverage``: where "which operators fall back" is an informative question (ONNX Runtime's CPU provider runs
  every standard operator, so CPU coverage asks OpenVINO's CPU plugin; NPU coverage reads the CANN knowledge file).
* Serving (``--backend auto``, :func:`auto_backend`): by format; ONNX on the NVIDIA GPU when there is one, else on
  ``PORTABLE``; an OpenVINO IR on ``openvino:cpu``.

Every default backend of a format (what runs an artifact when nobody named a backend) is :func:`default_backend`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelyard.core.errors import InvalidInput

PORTABLE = "onnxruntime:cpu"


@dataclass(frozen=True)
class DeviceTargets:
    """One device's row of the policy (see the module docstring)."""

    backends: tuple[str, ...]
    check: str
    coverage: str


DEVICES: dict[str, DeviceTargets] = {
    "cpu": DeviceTargets(("openvino:cpu", "onnxruntime:cpu"), check="onnxruntime:cpu", coverage="openvino:cpu"),
    "cuda": DeviceTargets(("onnxruntime:tensorrt", "onnxruntime:cuda"), check="onnxruntime:cuda",
                          coverage="onnxruntime:cuda"),
    "npu": DeviceTargets(("onnxruntime:cann", "openvino:npu"), check="onnxruntime:cann", coverage="npu"),
    "gpu": DeviceTargets(("openvino:gpu",), check="openvino:gpu", coverage="openvino:gpu"),
}
# the backend that runs an artifact of each format when no backend is named (the reference of a model as it is)
FORMAT_DEFAULTS = {"torch": "torch:cpu", "onnx": "onnxruntime:cpu", "openvino": "openvino:cpu"}
SERVED_FORMATS = ("onnx", "openvino")


def _row(target: str) -> DeviceTargets:
    row = DEVICES.get(target)
    if row is None:
        raise InvalidInput(f"target {target!r}: use a device ({', '.join(DEVICES)}) or a backend:device")
    return row


def device_of(target: str) -> str:
    """``cuda`` -> ``cuda``; ``onnxruntime:cuda`` -> ``cuda``; a bare backend name means its cpu."""
    if ":" in target:
        return target.partition(":")[2] or "cpu"
    return target if target in DEVICES else "cpu"


def backends_for(target: str) -> tuple[str, ...]:
    """Every backend that serves ``target``, in order of preference (a ``backend:device`` is just itself)."""
    return (target,) if ":" in target else _row(target).backends


def check_backend(target: str) -> tuple[str, str | None]:
    """The backend a precision check of a model for ``target`` runs on here, and a note when the preferred one is
    not available (then the check runs on ``PORTABLE``)."""
    from modelyard.runtime.registry import get_backend

    wanted = target if ":" in target else DEVICES.get(target, DEVICES["cpu"]).check
    ok, why = get_backend(wanted).available()
    if ok:
        return wanted, None
    return PORTABLE, f"{wanted} is not available here ({why}); compared on {PORTABLE}"


def coverage_target(target: str) -> str:
    """Where operator coverage for ``target`` is asked (``npu`` is the knowledge file, not a backend)."""
    return target if ":" in target else DEVICES.get(target, DEVICES["cpu"]).coverage


def default_backend(fmt: str, device: str = "cpu") -> str:
    """The backend that runs a ``fmt`` artifact as it is (torch keeps the device; the others run on their cpu)."""
    if fmt not in FORMAT_DEFAULTS:
        raise InvalidInput(f"no backend runs {fmt!r} models (formats: {', '.join(FORMAT_DEFAULTS)})")
    return f"torch:{device}" if fmt == "torch" else FORMAT_DEFAULTS[fmt]


def _nvidia_driver_present() -> bool:
    """A cheap look for an NVIDIA driver, so CPU-only machines never import torch just to learn there is no GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def auto_backend(fmt: str, model_path: str | Path | None = None) -> str:
    """What ``--backend auto`` runs a served model of format ``fmt`` on, here.

    OpenVINO IR runs on ``openvino:cpu``. ONNX runs on the GPU when there is one: ``onnxruntime:cuda`` when the
    installed onnxruntime has the CUDA provider, else ``torch:cuda`` when every operator of the graph at
    ``model_path`` has a torch kernel; otherwise on ``onnxruntime:cpu`` (``PORTABLE``).
    """
    from modelyard.runtime.registry import get_backend

    if fmt == "openvino":
        return "openvino:cpu"
    if fmt not in SERVED_FORMATS:
        raise InvalidInput(f"no backend serves {fmt!r} models (served formats: {', '.join(SERVED_FORMATS)})")
    if _nvidia_driver_present():
        if get_backend("onnxruntime:cuda").available()[0]:
            return "onnxruntime:cuda"
        if get_backend("torch:cuda").available()[0] and model_path is not None:
            from modelyard.runtime.onnx_graph import load_onnx
            from modelyard.runtime.onnx_torch import unsupported_ops

            if not unsupported_ops(load_onnx(Path(model_path))):
                return "torch:cuda"
    return PORTABLE
