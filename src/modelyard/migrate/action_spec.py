"""The base of the migration actions' option specs (``ConvertSpec``, ``CompareSpec``, ``BenchmarkSpec``,
``OptimizeSpec``): each is declared once, next to its function, and the CLI, the job kind and MIGRATION.yaml read
their fields and defaults from it, so the four cannot drift apart."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelyard.core.errors import InvalidInput

Spec = TypeVar("Spec", bound=BaseModel)


class ActionSpec(BaseModel):
    """Frozen, unknown fields refused, hashable by content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def content_hash(self) -> str:
        """sha256 of the spec's JSON (sorted keys): the same options give the same hash."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def validated(cls: type[Spec], data: dict[str, Any], as_options: bool = True) -> Spec:
    """``cls.model_validate(data)``, a failure raised as one ``InvalidInput`` naming each bad field, as the CLI
    option it comes from (``budget_s`` -> ``--budget-s``) unless ``as_options`` is False."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            if as_options and error["loc"]:
                field = "--" + str(error["loc"][0]).replace("_", "-") + field[len(str(error["loc"][0])):]
            problems.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
        raise InvalidInput("; ".join(problems)) from None


def default_of(cls: type[BaseModel], field: str) -> Any:
    """A field's default (its factory's value for list/dict fields): what the CLI shows and uses."""
    info = cls.model_fields[field]
    return info.default_factory() if info.default_factory is not None else info.default
