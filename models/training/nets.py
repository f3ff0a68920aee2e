"""The network both shipped classifiers use: a small VGG-style CNN for 1x28x28 inputs.

Three stages of two 3x3 conv + batch-norm + ReLU, max-pooling between stages (28 -> 14 -> 7), global
average pooling and one linear layer. With widths (24, 48, 96) it has ~0.16 M parameters and costs
~16 M multiply-adds per image, so one 28x28 input runs in well under a millisecond on one CPU core.
No torchvision: the layers are written here so the training extra needs only torch.
``SoftmaxEnsemble`` wraps several trained copies (different seeds) into one exportable graph.
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


class SoftmaxEnsemble(nn.Module):
    """Several networks whose softmax outputs are averaged inside the graph.

    Output: log of the mean class probability, shape (N, n_classes). These are valid logits: a softmax
    over them gives back exactly the averaged probabilities (they already sum to 1), so a consumer that
    applies ``softmax`` to the output (the manifest's ``activation``) sees the ensemble's probabilities.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(0)
        # The floor keeps log finite when every member is certain (p underflows to 0 in float32).
        return torch.log(p.clamp_min(1e-30))
