"""Code migration: analyze a project for GPU-specific code against YAML rules, rewrite it, report it."""
