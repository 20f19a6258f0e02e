"""The base of the migration actions' option specs (``ConvertSpec``, ``CompareSpec``, ``BenchmarkSpec``,
``OptimizeSpec``) and of the pass configs: each is declared once, next to its function, and the CLI, the job kind
and MIGRATION.yaml read their fields and defaults from it, so the four cannot drift apart.

A spec's ``content_hash()`` is its cache key: the pass cache and the optimiser's measurement cache key on it plus
the digest of the input they read (``cache_key``). Fields that cannot change the cached value (where an input is
read from, whose content the caller digests instead; how long to search; how to judge) are named in
``not_hashed``, so changing them still hits the cache.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelyard.core.errors import InvalidInput

Spec = TypeVar("Spec", bound=BaseModel)


class ActionSpec(BaseModel):
    """Frozen, unknown fields refused, hashable by content."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # fields that do not change the cached result (each subclass says why for its own)
    not_hashed: ClassVar[frozenset[str]] = frozenset()

    def content_hash(self) -> str:
        """sha256 of the spec's JSON (sorted keys) without the ``not_hashed`` fields: the same options give the
        same hash."""
        data = self.model_dump(mode="json", exclude=set(self.not_hashed))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def cache_key(self, *input_digests: str) -> str:
        """The cache key of running this spec on inputs with these content digests: ``content_hash()`` plus them.

        Example::

            key = config.cache_key("onnx-fp16", artifact.content_hash())
        """
        digest = hashlib.sha256(self.content_hash().encode())
        for part in input_digests:
            digest.update(b"\0" + part.encode())
        return digest.hexdigest()


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
