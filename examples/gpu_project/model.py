"""A tiny transformer encoder classifier."""

import math

import torch
from torch import nn

from fused_ops import bias_gelu


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, seq, self.heads, -1).transpose(1, 2).reshape(batch * self.heads, seq, -1)
                   for t in (q, k, v))
        # scores = 0 * bias + (q @ k^T) / sqrt(d), as in GPT-NeoX/BLOOM
        bias = torch.zeros(batch * self.heads, seq, seq, dtype=q.dtype, device=q.device)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(q.shape[-1]))
        out = torch.bmm(scores.softmax(dim=-1), v)
        out = out.reshape(batch, self.heads, seq, -1).transpose(1, 2).reshape(batch, seq, dim)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim, bias=False)
        self.fc1_bias = nn.Parameter(torch.zeros(4 * dim))
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(bias_gelu(self.fc1(self.norm2(x)), self.fc1_bias))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 256, dim: int = 64, heads: int = 4, depth: int = 2, classes: int = 8,
                 max_len: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))
