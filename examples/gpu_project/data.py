"""Synthetic token-classification data: the label is the most frequent token bucket."""

import torch
from torch.utils.data import DataLoader, Dataset


class SyntheticTokens(Dataset):
    def __init__(self, size: int = 2048, seq_len: int = 32, vocab: int = 256, classes: int = 8, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(0, vocab, (size, seq_len), generator=generator)
        self.labels = (self.tokens // (vocab // classes)).mode(dim=1).values

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int):
        return self.tokens[index], self.labels[index]


def make_loader(batch_size: int, seed: int = 0, workers: int = 2, sampler=None) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        SyntheticTokens(seed=seed),
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        pin_memory=True,
        drop_last=True,
        persistent_workers=workers > 0,
    )
