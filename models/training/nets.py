"""The network both shipped classifiers use: a small VGG-style CNN for 1x28x28 inputs.

Three stages of two 3x3 conv + batch-norm + ReLU, max-pooling between stages (28 -> 14 -> 7), global
average pooling and one linear layer. With widths (24, 48, 96) it has ~0.16 M parameters and costs
~16 M multiply-adds per image, so one 28x28 input runs in well under a millisecond on one CPU core.
No torchvision: the layers are written here so the training extra needs only torch.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Input (N, 1, 28, 28) normalised grey levels; output (N, n_classes) logits."""

    def __init__(self, n_classes: int, widths: tuple[int, int, int] = (24, 48, 96),
                 dropout: float = 0.2) -> None:
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(
            _conv(1, a), _conv(a, a), nn.MaxPool2d(2),
            _conv(a, b), _conv(b, b), nn.MaxPool2d(2),
            _conv(b, c), _conv(c, c),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
