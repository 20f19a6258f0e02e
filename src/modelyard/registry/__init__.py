"""The model registry: named models, immutable versions (artifacts in the blob store, signature, metrics, tags,
lineage, a generated model card) and movable aliases; ``modelyard://NAME@VERSION`` resolution.

Kept import-light: the submodules pull in SQLAlchemy, ONNX or torch only when used.
"""
