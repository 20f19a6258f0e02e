"""OpenVINO passes: ONNX -> IR, a recorded bf16 inference-precision hint, and NNCF INT8 on the ONNX graph."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from pydantic import Field

from modelyard.migrate.model.passes.base import Pass, PassConfig, PassFailed, copy_layer_map
from modelyard.migrate.model.passes.onnx import calibration_digest, calibration_feeds
from modelyard.runtime.spec import Artifact
from modelyard.runtime.tracing import quiet_exporters


class OnnxToOpenVinoConfig(PassConfig):
    """Args:
    compress_to_fp16: store weights as fp16 in the ``.bin`` (halves the size; weights lose precision).
        Default False, so the IR computes what the ONNX model computes.
    """

    compress_to_fp16: bool = False


class OnnxToOpenVino(Pass):
    """ONNX -> OpenVINO IR (``.xml`` + ``.bin``) with ``openvino.convert_model``; tensor names are kept."""

    name = "onnx-to-openvino"
    description = "Convert an ONNX model to OpenVINO IR (.xml/.bin), optionally with fp16-compressed weights."
    config_model = OnnxToOpenVinoConfig
    input_formats = ("onnx",)
    output_format = "openvino"
    suffix = ".xml"

    def _run_impl(
        self, artifact: Artifact, config: OnnxToOpenVinoConfig, out_dir: Path, stem: str, notes: list[str]
    ) -> Path:
        import openvino as ov

        if config.compress_to_fp16:
            stem = stem.removesuffix(".xml") + ".fp16.xml"
        target = out_dir / stem
        try:
            with quiet_exporters():
                model = ov.convert_model(str(artifact.path))
                ov.save_model(model, str(target), compress_to_fp16=config.compress_to_fp16)
        except Exception as exc:  # noqa: BLE001 - OpenVINO's frontends raise plain RuntimeError/OpConversionFailure
            raise PassFailed(f"pass {self.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        copy_layer_map(artifact.path, target)
        return target


class Bf16HintConfig(PassConfig):
    """Args:
    precision: the inference precision hint recorded in the IR's ``runtime_options``. Default ``bf16``.
    """

    precision: str = Field(default="bf16", pattern="^(bf16|f16|f32)$")


class Bf16Hint(Pass):
    """Record an inference precision hint in the IR (``rt_info.runtime_options.INFERENCE_PRECISION_HINT``); the
    OpenVINO backend compiles with it when no precision is asked for, and records that it did."""

    name = "openvino-bf16-hint"
    description = "Record a bf16 (or f16/f32) inference-precision hint in an OpenVINO IR."
    config_model = Bf16HintConfig
    input_formats = ("openvino",)
    output_format = "openvino"
    suffix = ".xml"

    def _run_impl(self, artifact: Artifact, config: Bf16HintConfig, out_dir: Path, stem: str, notes: list[str]) -> Path:
        import openvino as ov

        stem = stem.removesuffix(".xml") + f".{config.precision}-hint.xml"
        target = out_dir / stem
        model = ov.Core().read_model(str(artifact.path))
        model.set_rt_info(config.precision, ["runtime_options", "INFERENCE_PRECISION_HINT"])
        ov.save_model(model, str(target), compress_to_fp16=False)
        copy_layer_map(artifact.path, target)
        notes.append(f"openvino backends compile this IR with INFERENCE_PRECISION_HINT={config.precision}")
        return target


class NncfInt8Config(PassConfig):
    """Args:
    calibration: calibration data (default seeded random feeds).
    samples: calibration subset size. Default 16.
    preset: ``performance`` (symmetric, default) or ``mixed`` (asymmetric activations).
    """

    # NOTE: where the calibration data lies does not change the result, its content does: the pass keys its
    # cache on the data's digest (``_cache_extra``), so the same data in another folder is a cache hit
    not_hashed = frozenset({"calibration"})

    calibration: str | None = None
    samples: int = Field(default=16, ge=1, le=10000)
    preset: str = Field(default="performance", pattern="^(performance|mixed)$")


class NncfInt8(Pass):
    """Post-training INT8 quantization of the ONNX graph with NNCF (QDQ nodes OpenVINO runs as INT8)."""

    name = "nncf-int8"
    description = "Quantize an ONNX graph to INT8 with NNCF post-training quantization (for OpenVINO)."
    config_model = NncfInt8Config
    input_formats = ("onnx",)
    output_format = "onnx"
    suffix = ".nncf-int8.onnx"

    def _cache_extra(self, artifact: Artifact, config: NncfInt8Config) -> str:
        return calibration_digest(artifact.spec, config.calibration)

    def _kept_in_float(self, model, config: NncfInt8Config, notes: list[str]) -> list[str]:
        """Node names NNCF must leave in float (its ignored scope); none here (subclasses keep some)."""
        return []

    def _run_impl(self, artifact: Artifact, config: NncfInt8Config, out_dir: Path, stem: str, notes: list[str]) -> Path:
        import logging

        import onnx

        logging.getLogger("nncf").setLevel(logging.ERROR)
        import nncf

        model = onnx.load(str(artifact.path))
        samples = calibration_feeds(
            artifact.spec, config.calibration, config.samples, {i.name for i in model.graph.input}
        )
        if not config.calibration:
            notes.append(f"calibrated on {len(samples)} seeded random samples: pass --calib DATA for real ranges")
        excluded = self._kept_in_float(model, config, notes)
        preset = (
            nncf.QuantizationPreset.PERFORMANCE if config.preset == "performance" else nncf.QuantizationPreset.MIXED
        )
        try:
            # NOTE: NNCF draws rich progress bars on stdout, which would corrupt `--json` output
            with quiet_exporters(), contextlib.redirect_stdout(io.StringIO()):
                quantized = nncf.quantize(
                    model, nncf.Dataset(samples), preset=preset, subset_size=len(samples),
                    ignored_scope=nncf.IgnoredScope(names=excluded, validate=False) if excluded else None,
                )
        except Exception as exc:  # noqa: BLE001 - NNCF surfaces backend errors of every kind
            raise PassFailed(f"pass {self.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        target = out_dir / stem
        onnx.save(quantized, str(target))
        copy_layer_map(artifact.path, target)
        return target
