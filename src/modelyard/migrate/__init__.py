"""Migration of GPU PyTorch code and models to other accelerators, one subpackage per product.

``code``: analyze and rewrite a project's source (standalone); ``model``: conversion passes, operator coverage,
compare, benchmark; ``optimize``: search passes x backends x precision for the fastest model that keeps accuracy
(uses ``model``); ``pipeline``: MIGRATION.yaml run as phases with saved state (uses all of them). Imports point
pipeline -> optimize -> model, and ``code`` stands alone (import-linter contracts in pyproject.toml).
"""
