"""Small example models for specs, tests and the demo: built offline from code or a ``transformers`` config with a
fixed seed, so the same entrypoint always gives the same weights.

Use them as spec entrypoints, e.g. ``entrypoint: modelyard.runtime.zoo:hf_resnet``.
"""

from __future__ import annotations


def _seeded(seed: int, build):
    import torch

    # NOTE: fork_rng keeps the caller's global RNG untouched while transformers' initialisers draw from it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval()


def tiny_mlp(in_features: int = 16, hidden: int = 32, out_features: int = 10, depth: int = 3, seed: int = 0):
    """An MLP: ``depth`` Linear+ReLU blocks then a Linear head. Input ``[batch, in_features]``."""
    import torch

    def build():
        layers: list = []
        width = in_features
        for _ in range(depth):
            layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            width = hidden
        layers.append(torch.nn.Linear(width, out_features))
        return torch.nn.Sequential(*layers)

    return _seeded(seed, build)


def tiny_cnn(channels: int = 8, num_classes: int = 10, batchnorm: bool = True, seed: int = 0):
    """A small CNN on ``[batch, 3, H, W]`` images: three conv stages (optionally with BatchNorm), pooling, a head."""
    import torch

    class TinyCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            norm = (lambda c: torch.nn.BatchNorm2d(c)) if batchnorm else (lambda c: torch.nn.Identity())
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, padding=1), norm(channels), torch.nn.ReLU())
            self.stage1 = torch.nn.Sequential(
                torch.nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1), norm(channels * 2), torch.nn.ReLU()
            )
            self.stage2 = torch.nn.Sequential(
                torch.nn.Conv2d(channels * 2, channels * 4, 3, stride=2, padding=1), norm(channels * 4), torch.nn.ReLU()
            )
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.head = torch.nn.Linear(channels * 4, num_classes)

        def forward(self, x):
            x = self.stage2(self.stage1(self.stem(x)))
            return self.head(torch.flatten(self.pool(x), 1))

    def build():
        model = TinyCNN()
        if batchnorm:
            # non-trivial running statistics, so BatchNorm is not an identity in eval mode
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
        return model

    return _seeded(seed, build)


def hf_resnet(
    num_labels: int = 10,
    embedding_size: int = 16,
    hidden_sizes: list[int] | None = None,
    depths: list[int] | None = None,
    layer_type: str = "basic",
    seed: int = 0,
):
    """A ``transformers`` ResNetForImageClassification from a small config (ResNet-50 with
    ``hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3], layer_type="bottleneck", embedding_size=64``).
    Input ``pixel_values [batch, 3, H, W]``, output ``logits``."""
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        num_channels=3,
        embedding_size=embedding_size,
        hidden_sizes=hidden_sizes or [16, 32],
        depths=depths or [1, 1],
        layer_type=layer_type,
        num_labels=num_labels,
    )
    return _seeded(seed, lambda: ResNetForImageClassification(config))


def resnet50(num_labels: int = 1000, seed: int = 0):
    """A ResNet-50-sized ``transformers`` ResNet (random weights): ~25M parameters, ~170 comparable layers."""
    return hf_resnet(
        num_labels=num_labels,
        embedding_size=64,
        hidden_sizes=[256, 512, 1024, 2048],
        depths=[3, 4, 6, 3],
        layer_type="bottleneck",
        seed=seed,
    )


def hf_bert(
    vocab_size: int = 100,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    num_labels: int = 4,
    seed: int = 0,
):
    """A ``transformers`` BertForSequenceClassification from a small config. Inputs ``input_ids`` and
    ``attention_mask`` ``[batch, seq]`` (int64), output ``logits``."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    return _seeded(seed, lambda: BertForSequenceClassification(config))


def hf_vit(image_size: int = 32, patch_size: int = 8, hidden_size: int = 32, num_labels: int = 10, seed: int = 0):
    """A ``transformers`` ViTForImageClassification from a small config. Input ``pixel_values`` ``[batch, 3,
    image_size, image_size]``, output ``logits``."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        num_labels=num_labels,
    )
    return _seeded(seed, lambda: ViTForImageClassification(config))


HF_TASKS = ("text-classification", "image-classification", "feature-extraction")


def hf_local(path: str, task: str):
    """A Hugging Face model from a local folder (``config.json`` + ``model.safetensors``), never from a hub.

    ``task`` picks the head: ``text-classification`` / ``image-classification`` (output ``logits``) or
    ``feature-extraction`` (output ``embedding``: the last hidden state mean-pooled over the attention mask for text,
    over the patches for images). Models that need their own code (``auto_map``) are refused.
    """
    import json
    import os
    from pathlib import Path

    from modelyard.core.errors import InvalidInput, NotFound

    folder = Path(path)
    if task not in HF_TASKS:
        raise InvalidInput(f"unknown Hugging Face task {task!r}; choose one of {', '.join(HF_TASKS)}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{folder.name} has no config.json: not a Hugging Face model folder") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder.name}/config.json is not readable JSON: {type(exc).__name__}") from None
    if config.get("auto_map"):
        raise InvalidInput(f"{folder.name} needs its own Python code (auto_map in config.json); Modelyard does not run "
                           "remote code")
    if not any(folder.glob("*.safetensors")) and not (folder / "model.safetensors.index.json").is_file():
        raise NotFound(f"{folder.name} has no .safetensors weights; Modelyard loads only local safetensors and never "
                       "downloads")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces with local_files_only: no network, ever
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # load reports and progress bars would drown the CLI's one line
    transformers.logging.disable_progress_bar()
    options = {"local_files_only": True, "use_safetensors": True}
    if task == "text-classification":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, **options)
    elif task == "image-classification":
        model = transformers.AutoModelForImageClassification.from_pretrained(folder, **options)
    else:
        base = transformers.AutoModel.from_pretrained(folder, **options)

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.base = base

            def forward(self, *args, **kwargs):
                hidden = self.base(*args, **kwargs).last_hidden_state
                mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
                if mask is None or mask.dim() != 2:
                    return hidden.mean(dim=1)
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

        model = Pooled()
    return model.eval()
