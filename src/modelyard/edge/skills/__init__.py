"""Skills: a manifest plus logic code, run per video channel on a device (``host``) or as a platform service.

Kept light: the device agent imports this package, so heavy stacks (PyAV, ONNX Runtime, the built-in skills'
models) are imported inside the functions that use them.
"""
