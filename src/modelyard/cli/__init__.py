"""The ``modelyard`` command line: ``modelyard <noun> <verb>``, a thin shell over the SDK."""
