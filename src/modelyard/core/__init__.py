"""Leaf package: settings, errors, ids, the plugin registry. Imports nothing else from modelyard."""
