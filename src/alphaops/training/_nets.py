"""PyTorch networks for (N, T, F) windows: a bidirectional LSTM with attention and PatchTST.

Both fold the input scaler (training mean and standard deviation per feature) into the graph
as buffers and end in a softmax, so the exported ONNX model takes raw features and returns
probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["BiLSTMAttention", "PatchTST", "Standardize"]


class Standardize(nn.Module):
    """``(x - mean) / std`` with per-feature buffers (saved with the weights, exported to ONNX)."""

    mean: Tensor
    std: Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class BiLSTMAttention(nn.Module):
    """LSTM over the window in both directions, additive attention over time, linear head."""

    def __init__(
        self, n_features: int, n_classes: int, hidden: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.scale = Standardize(n_features)
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(B, n_classes)`` for windows ``(B, T, F)``."""
        states, _ = self.lstm(self.scale(x))
        weights = torch.softmax(self.score(states).squeeze(-1), dim=1)
        context = (states * weights.unsqueeze(-1)).sum(dim=1)
        logits: Tensor = self.head(self.dropout(context))
        return logits


class _EncoderLayer(nn.Module):
    # A plain pre-norm transformer layer. Written out (rather than nn.TransformerEncoderLayer)
    # so that training and ONNX export run the same ops, with no fused fast path.
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        batch, patches, d_model = x.shape
        head_dim = d_model // self.heads
        q, k, v = (
            self.qkv(self.norm1(x))
            .reshape(batch, patches, 3, self.heads, head_dim)
            .permute(2, 0, 3, 1, 4)
        )
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, patches, d_model)
        x = x + self.dropout(self.out(mixed))
        ff: Tensor = self.ff(self.norm2(x))
        out: Tensor = x + self.dropout(ff)
        return out


class PatchTST(nn.Module):
    """PatchTST (Nie et al., 2023) as a classifier.

    Each feature channel is cut into patches of ``patch_len`` bars every ``stride`` bars,
    embedded, and encoded by one transformer shared by all channels (channel independence);
    the flattened encodings of all channels feed a linear head.
    """

    patch_index: Tensor

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        lookback: int,
        patch_len: int,
        stride: int,
        d_model: int,
        heads: int,
        layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        patches = (lookback - patch_len) // stride + 1
        self.scale = Standardize(n_features)
        starts = torch.arange(patches) * stride
        # Patch p covers bars starts[p] .. starts[p] + patch_len - 1 (a gather, ONNX friendly).
        self.register_buffer("patch_index", starts[:, None] + torch.arange(patch_len)[None, :])
        self.embed = nn.Linear(patch_len, d_model)
        self.position = nn.Parameter(torch.randn(patches, d_model) * 0.02)
        self.encoder = nn.ModuleList(
            [_EncoderLayer(d_model, heads, dropout) for _ in range(layers)]
        )
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_features * patches * d_model, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(B, n_classes)`` for windows ``(B, T, F)``."""
        batch = x.shape[0]
        channels = self.scale(x).transpose(1, 2)  # (B, F, T)
        patches = channels[:, :, self.patch_index]  # (B, F, P, L)
        z = self.embed(patches) + self.position  # (B, F, P, D)
        z = z.reshape(-1, z.shape[2], z.shape[3])  # channels share the encoder
        for layer in self.encoder:
            z = layer(z)
        z = self.norm(z).reshape(batch, -1)
        logits: Tensor = self.head(self.dropout(z))
        return logits


class WithSoftmax(nn.Module):
    """Wrap a logits network so that it returns probabilities (the exported graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.net(x), dim=-1)
