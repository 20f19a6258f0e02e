"""Model factory for ``examples/gpu_project``: its ``TinyTransformer`` built with a fixed seed, so every build (the
reference, the fp64 noise floor, the ONNX export) has the same weights. Used by ``gpu_project_model.yaml``; the
migration file puts ``gpu_project/`` on the import path."""


def build(seed: int = 0, **kwargs):
    import torch
    from model import TinyTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyTransformer(**kwargs).eval()
