"""One spec per action: the CLI's option defaults, the job kinds and MIGRATION.yaml read the action specs."""

from __future__ import annotations

import inspect

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.migrate.action_spec import validated
from modelyard.migrate.model.specs import BenchmarkSpec, CompareSpec, ConvertSpec
from modelyard.migrate.optimize.spec import OptimizeSpec

# CLI parameter -> spec field, where the names differ
RENAMED = {"ref": "reference", "batch_sizes": "batch_sizes"}


def _cli_defaults(command) -> dict:
    defaults = {}
    for name, parameter in inspect.signature(command).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            defaults[RENAMED.get(name, name)] = parameter.default
    return defaults


@pytest.mark.parametrize(("module", "command", "spec_cls"), [
    ("migrate_model", "convert_command", ConvertSpec),
    ("migrate_model", "compare_command", CompareSpec),
    ("migrate_optimize", "benchmark_command", BenchmarkSpec),
    ("migrate_optimize", "optimize_command", OptimizeSpec),
])
def test_cli_defaults_are_the_specs(module, command, spec_cls):
    import importlib

    cli = _cli_defaults(getattr(importlib.import_module(f"modelyard.cli.{module}"), command))
    spec = spec_cls()
    shared = [name for name in spec_cls.model_fields if name in cli]
    assert len(shared) >= 3, shared
    for name in shared:
        value = getattr(spec, name)
        if name == "batch_sizes":  # the CLI takes "1,8"
            value = ",".join(str(size) for size in value)
        assert cli[name] == value, f"{command} --{name}: CLI default {cli[name]!r}, spec default {value!r}"


def test_job_kinds_embed_the_specs():
    from modelyard.migrate.model.jobs import CompareJobSpec, ConvertJobSpec
    from modelyard.migrate.pipeline.jobs import BenchmarkJobSpec, OptimizeJobSpec

    for job_cls, spec_cls in ((ConvertJobSpec, ConvertSpec), (CompareJobSpec, CompareSpec),
                              (BenchmarkJobSpec, BenchmarkSpec), (OptimizeJobSpec, OptimizeSpec)):
        assert issubclass(job_cls, spec_cls)
        job = job_cls(spec={"onnx": "m.onnx"})
        assert job.model_dump(include=set(spec_cls.model_fields)) == spec_cls().model_dump()


def test_migration_sections_are_the_specs_parts():
    from modelyard.migrate.pipeline.config import MigrationConfig

    config = MigrationConfig(name="x", model="m.yaml")
    optimize = OptimizeSpec(**config.optimize.model_dump())
    assert (optimize.budget_s, optimize.samples) == (OptimizeSpec().budget_s, OptimizeSpec().samples) == (300.0, 128)
    assert isinstance(config.optimize, OptimizeSpec.__mro__[1])
    assert list(config.benchmark.batch_sizes) == list(BenchmarkSpec().batch_sizes)
    with pytest.raises(Exception, match="budget_s"):
        MigrationConfig(name="x", model="m.yaml", optimize={"budget_s": 0})


def test_bad_options_name_the_cli_option_and_hash_is_stable():
    with pytest.raises(InvalidInput, match="--budget-s"):
        validated(OptimizeSpec, {"budget_s": -1})
    with pytest.raises(InvalidInput, match="--to: unknown target format"):
        validated(ConvertSpec, {"to": "tflite"})
    assert CompareSpec(samples=4).content_hash() == CompareSpec(samples=4).content_hash()
    assert CompareSpec(samples=4).content_hash() != CompareSpec(samples=5).content_hash()


def test_content_hash_leaves_out_what_cannot_change_the_result_and_cache_key_adds_the_inputs():
    from modelyard.migrate.model.passes.onnx import Int8StaticConfig

    spec = OptimizeSpec(samples=8)
    assert spec.content_hash() == OptimizeSpec(samples=8, budget_s=5, strategy="exhaustive").content_hash()
    assert spec.content_hash() != OptimizeSpec(samples=9).content_hash()
    assert spec.cache_key("model-a") == OptimizeSpec(samples=8).cache_key("model-a")
    assert spec.cache_key("model-a") != spec.cache_key("model-b") != spec.content_hash()
    assert ConvertSpec().content_hash() != ConvertSpec(to="onnx-fp16").content_hash()  # nothing left out there
    config = Int8StaticConfig(calibration="/data/a", samples=4)
    assert config.content_hash() == Int8StaticConfig(calibration="/elsewhere/a", samples=4).content_hash()
    assert config.content_hash() != Int8StaticConfig(calibration="/data/a", samples=5).content_hash()
