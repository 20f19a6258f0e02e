"""The migration pipeline: MIGRATION.yaml as phases with saved state, resumable, and its reports."""
