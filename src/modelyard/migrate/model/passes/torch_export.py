"""torch.export: an ExportedProgram (``.pt2``) for runtimes that consume one (ExecuTorch, AOTInductor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.passes.base import Pass, PassConfig, PassFailed
from modelyard.runtime.spec import Artifact
from modelyard.runtime.tracing import example_inputs, quiet_exporters


class TorchExportConfig(PassConfig):
    """Args:
    dynamic: make the spec's named dims dynamic. Default True.
    strict: use strict (TorchDynamo) tracing. Default False.
    """

    dynamic: bool = True
    strict: bool = False


class TorchExport(Pass):
    """torch.export.export -> ``.pt2``."""

    name = "torch-export"
    description = "Capture the PyTorch model with torch.export and save an ExportedProgram (.pt2)."
    config_model = TorchExportConfig
    input_formats = ("torch",)
    output_format = "torch_export"
    suffix = ".pt2"

    def _run_impl(
        self, artifact: Artifact, config: TorchExportConfig, out_dir: Path, stem: str, notes: list[str]
    ) -> Path:
        import torch

        from modelyard.runtime.torch_backend import build_torch_model

        spec = artifact.spec
        model = build_torch_model(spec)
        args = example_inputs(spec)
        dynamic_shapes = None
        if config.dynamic:
            dims: dict[str, object] = {}
            dynamic_shapes = []
            for inp in spec.inputs:
                axes = {}
                for axis, d in enumerate(inp.shape):
                    if isinstance(d, str):
                        axes[axis] = dims.setdefault(d, torch.export.Dim(d))
                dynamic_shapes.append(axes or None)
            dynamic_shapes = tuple(dynamic_shapes)
        target = out_dir / stem
        try:
            with quiet_exporters():
                program = torch.export.export(model, args, dynamic_shapes=dynamic_shapes, strict=config.strict)
                torch.export.save(program, str(target))
        except Exception as exc:  # noqa: BLE001 - export errors name the unsupported construct
            raise PassFailed(f"pass {self.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        return target

    def _run_once(self, artifact: Artifact, feeds: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
        return "torch:cpu (torch.export)", run_exported(artifact.path, artifact.spec, feeds)


def run_exported(path: Path, spec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Load a ``.pt2`` this pass wrote and run it once (verification only: the file is our own output)."""
    import torch

    from modelyard.runtime.torch_backend import name_outputs, to_numpy

    try:
        with quiet_exporters():
            program = torch.export.load(str(path))
            with torch.inference_mode():
                output = program.module()(*(torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in spec.inputs))
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"{path.name}: cannot run the exported program: {type(exc).__name__}: {exc}") from None
    return {name: to_numpy(t) for name, t in name_outputs(output, spec.outputs)}
