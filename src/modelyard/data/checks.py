"""Trainability checks: the ExeML minimums (``checks.yaml``) plus broken data, as one verdict value.

``check_version(version)`` is what ``automl train`` runs first and what ``data stats`` shows, so the message that
blocks training is the one the user already saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

RULES_FILE = Path(__file__).with_name("checks.yaml")


@lru_cache(maxsize=1)
def rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one dataset version: ``bool(result)`` is True when it may be trained on."""

    ref: str
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ref": self.ref, "trainable": bool(self), "problems": list(self.problems),
                "warnings": list(self.warnings)}

    def __str__(self) -> str:
        if self:
            head = f"{self.ref}: ready for training"
        else:
            head = f"{self.ref} cannot be trained on: " + "; ".join(self.problems)
        return head + "".join(f"\n  warning: {w}" for w in self.warnings)


def check_stats(ref: str, kind: str, schema: dict, stats: dict) -> CheckResult:
    """Apply the rules of ``kind`` to a version's stored ``stats`` and ``schema``."""
    problems: list[str] = []
    warnings: list[str] = []
    if kind == "object-detection":
        return _check_detection(ref, stats)
    if kind in ("text-classification", "multilabel-classification"):
        return _check_labels(ref, kind, stats)
    if kind == "text":
        return _check_text(ref, stats)
    if kind == "image-classification":
        rule = rules()["image-classification"]
        per_class = stats.get("per_class", {})
        usable = {k: v for k, v in per_class.items() if v > 0}
        if len(usable) < rule["min_classes"]:
            problems.append(f"needs at least {rule['min_classes']} classes, has {len(usable)}")
        small = sorted(k for k, v in per_class.items() if v < rule["min_per_class"])
        if small:
            problems.append(f"needs at least {rule['min_per_class']} images per class; too few in "
                            + ", ".join(f"{k} ({per_class[k]})" for k in small[:10]))
        corrupt = stats.get("corrupt", [])
        if len(corrupt) > rule["max_corrupt"]:
            names = ", ".join(item["path"] for item in corrupt[:5])
            problems.append(f"{len(corrupt)} corrupt image(s) ({names}); make a version without them with "
                            f"'modelyard data prep {ref} --filter-corrupt'")
        left_out = stats.get("left_out", {})
        if left_out.get("files"):
            names = ", ".join(item["path"] for item in left_out["examples"][:5])
            warnings.append(f"{left_out['files']} file(s) could not be decoded and were left out of the version "
                            f"({names})")
        advised = sorted(k for k, v in per_class.items() if rule["min_per_class"] <= v < rule["advised_per_class"])
        if advised:
            warnings.append(f"fewer than {rule['advised_per_class']} images in {len(advised)} class(es); "
                            "more data usually means a better model")
        tiny = stats.get("sizes", {}).get("min_side", 0)
        if tiny and tiny < rule["min_side_warning"]:
            warnings.append(f"some images are only {tiny} px on a side; they are scaled up for training")
    else:
        rule = rules()["tabular"]
        rows = stats.get("rows", 0)
        if rows < rule["min_rows"]:
            problems.append(f"needs at least {rule['min_rows']} rows, has {rows}")
        features = [c for c in schema.get("columns", []) if c["role"] == "feature"]
        if len(features) < rule["min_features"]:
            problems.append(f"needs at least {rule['min_features']} feature column(s), has {len(features)}")
        if schema.get("task") == "classification":
            crule = rule["classification"]
            per_class = stats.get("per_class", {})
            if len(per_class) < crule["min_classes"]:
                problems.append(f"needs at least {crule['min_classes']} classes, has {len(per_class)}")
            small = sorted(k for k, v in per_class.items() if v < crule["min_per_class"])
            if small:
                problems.append(f"needs at least {crule['min_per_class']} rows per class; too few in "
                                + ", ".join(f"{k} ({per_class[k]})" for k in small[:10]))
        missing = stats.get("missing", {})
        heavy = [c["name"] for c in features
                 if rows and missing.get(c["name"], 0) / rows > rule["max_missing_share_warning"]]
        if heavy:
            warnings.append(f"more than {rule['max_missing_share_warning']:.0%} missing values in "
                            + ", ".join(heavy[:10]) + " (imputed during training)")
        if stats.get("duplicate_rows"):
            warnings.append(f"{stats['duplicate_rows']} duplicate row(s); 'modelyard data prep {ref} --dedupe' "
                            "removes them")
    return CheckResult(ref, tuple(problems), tuple(warnings))


def _check_detection(ref: str, stats: dict) -> CheckResult:
    rule = rules()["object-detection"]
    problems: list[str] = []
    warnings: list[str] = []
    # stats made by something other than stats.annotation_stats may count boxes only: judge by those then
    per_class = stats.get("images_per_class", stats.get("per_class", {}))
    used = [k for k, v in per_class.items() if v > 0]
    if len(used) < rule["min_classes"]:
        problems.append(f"needs boxes of at least {rule['min_classes']} class(es), has {len(used)}")
    unused = sorted(k for k, v in per_class.items() if v == 0)
    if unused:
        problems.append("every class needs labeled images; no box of " + ", ".join(unused[:10])
                        + (" ..." if len(unused) > 10 else "") + " (label some, or remove the class)")
    small = sorted(k for k, v in per_class.items() if 0 < v < rule["min_images_per_class"])
    if small:
        problems.append(f"needs at least {rule['min_images_per_class']} images per class; too few in "
                        + ", ".join(f"{k} ({per_class[k]})" for k in small[:10]))
    corrupt = stats.get("corrupt", [])
    if len(corrupt) > rule["max_corrupt"]:
        problems.append(f"{len(corrupt)} corrupt image(s) ({', '.join(c['path'] for c in corrupt[:5])})")
    advised = sorted(k for k, v in per_class.items()
                     if rule["min_images_per_class"] <= v < rule["advised_images_per_class"])
    if advised:
        warnings.append(f"fewer than {rule['advised_images_per_class']} images in {len(advised)} class(es); more "
                        "labeled images usually mean a better detector")
    tiny = stats.get("tiny", {})
    if tiny.get("share", 0) > rule["tiny_share_warning"]:
        warnings.append(f"{tiny['boxes']} of {stats.get('boxes', 0)} boxes are tiny ({tiny.get('rule')}); consider "
                        "a larger input size")
    images = stats.get("usable", 0)
    if images and stats.get("empty_images", 0) / images > rule["empty_share_warning"]:
        warnings.append(f"{stats['empty_images']} of {images} images have no boxes (they train as background)")
    clipped = stats.get("clipped", {})
    if clipped.get("boxes"):
        warnings.append(f"{clipped['boxes']} box(es) crossed the image's edge and were clipped to it")
    return CheckResult(ref, tuple(problems), tuple(warnings))


def _check_labels(ref: str, kind: str, stats: dict) -> CheckResult:
    """Texts, and multi-label images: enough labeled items per class; unlabeled and repeated items warn."""
    rule = rules()[kind]
    unit = "texts" if kind == "text-classification" else "images"
    problems: list[str] = []
    warnings: list[str] = []
    per_class = stats.get("per_class", {})
    used = [k for k, v in per_class.items() if v > 0]
    if len(used) < rule["min_classes"]:
        problems.append(f"needs labeled {unit} of at least {rule['min_classes']} classes, has {len(used)}")
    small = sorted(k for k, v in per_class.items() if v < rule["min_per_class"])
    if small:
        problems.append(f"needs at least {rule['min_per_class']} labeled {unit} per class; too few in "
                        + ", ".join(f"{k} ({per_class[k]})" for k in small[:10]))
    advised = sorted(k for k, v in per_class.items() if rule["min_per_class"] <= v < rule["advised_per_class"])
    if advised:
        warnings.append(f"fewer than {rule['advised_per_class']} labeled {unit} in {len(advised)} class(es)")
    corrupt = stats.get("corrupt", [])
    if len(corrupt) > rule.get("max_corrupt", 0):
        problems.append(f"{len(corrupt)} corrupt image(s) ({', '.join(c['path'] for c in corrupt[:5])})")
    if stats.get("unlabeled"):
        warnings.append(f"{stats['unlabeled']} of {stats.get(unit, 0)} {unit} have no label (left out of training; "
                        "a labeling job can label them)")
    if stats.get("duplicates", {}).get("texts"):
        warnings.append(f"{stats['duplicates']['texts']} text(s) repeat another one word for word")
    return CheckResult(ref, tuple(problems), tuple(warnings))


def _check_text(ref: str, stats: dict) -> CheckResult:
    """A corpus for the tune job: records to train on, held-out ones to evaluate, two classes for classify (the table
    rules -- rows, feature columns -- do not apply to text)."""
    problems: list[str] = []
    warnings: list[str] = []
    split = stats.get("split", {})
    if not split.get("train"):
        problems.append("no training records")
    if not split.get("validation"):
        warnings.append("no validation records: tune evaluates on training records")
    per_class = stats.get("per_class")
    if per_class is not None and len([k for k, v in per_class.items() if v > 0]) < 2:
        problems.append(f"text/label records of at least 2 classes are needed to classify, has {len(per_class)}")
    if stats.get("duplicates_removed"):
        warnings.append(f"{stats['duplicates_removed']} exact duplicate record(s) removed at import")
    return CheckResult(ref, tuple(problems), tuple(warnings))
