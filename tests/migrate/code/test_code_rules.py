"""Rule files: the built-in ones load for every target, malformed ones fail naming the file and rule."""

from __future__ import annotations

import re

import libcst as cst
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.migrate.code.rules import TARGETS, load_all_rules, load_rules, target_profiles


def test_builtin_rules_load_for_every_target_with_unique_ids():
    rules = load_all_rules()
    assert len({r.id for r in rules}) == len(rules) >= 60
    families = {r.family for r in rules}
    assert {"device", "runtime", "precision", "distributed", "performance", "third_party", "kernels",
            "environment", "input"} <= families
    for target in TARGETS:
        rule_set = load_rules(target)
        assert set(rule_set.builtins) == {"parse-error", "file-skipped", "file-decoded"}


@pytest.mark.parametrize("target", TARGETS)
def test_every_rewrite_template_renders_to_valid_python(target):
    profile = target_profiles()[target]
    values = {"args": "a, b=1", ",args": ", a, b=1", "kwargs": "b=1", ",kwargs": ", b=1", "receiver": "x",
              "callee": "torch.amp.autocast", "attr": "memory_allocated", "device": profile.device,
              "device_type": profile.device_type, "value": "True"}
    for rule in load_rules(target).rules:
        rewrite = rule.rewrite.get(target)
        if rewrite is not None and rewrite.template:
            code = re.sub(r"\{(,?[a-z_]+)\}", lambda m: values[m.group(1)], rewrite.template)
            cst.parse_expression(code)


def test_target_helpers_parse():
    for profile in target_profiles().values():
        cst.parse_expression(profile.device)
        cst.parse_expression(profile.device_type)
        if profile.helper:
            cst.parse_module(profile.helper)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("match: {call: torch.cuda.foo}\n    status: {any: auto}\n", "needs a 'rewrite'"),
        ("match: {string_device: '(['}\n    status: {any: manual}\n", "invalid regular expression"),
        ("match: {calls: torch.cuda.foo}\n    status: {any: manual}\n", "calls"),
        ("match: {call: torch.cuda.foo}\n    status: {tpu: manual}\n", "tpu"),
        ("match: {}\n    status: {any: manual}\n", "names no matcher"),
    ],
)
def test_malformed_rules_name_file_and_rule(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "family: bad\nrules:\n  - id: broken-rule\n    category: device\n    " + body
        + "    effort: {level: low, hours: [0.1, 0.2]}\n    message: m\n    suggestion: s\n",
        encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        load_rules("any", (str(path),))
    assert "bad.yaml" in str(info.value) and "broken-rule" in str(info.value) and message in str(info.value)


def test_extra_rule_overrides_builtin_by_id(tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text(
        "family: override\nrules:\n  - id: cuda-synchronize\n    category: runtime\n"
        "    match: {call: torch.cuda.synchronize}\n    status: {any: manual}\n"
        "    effort: {level: high, hours: [1, 2]}\n    message: m\n    suggestion: ask the team\n", encoding="utf-8")
    assert load_rules("any", (str(path),)).get("cuda-synchronize").status_for("any") == "manual"
    assert load_rules("any").get("cuda-synchronize").status_for("any") == "auto"
