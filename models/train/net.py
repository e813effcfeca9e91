"""The members' network family, and the wrapper that becomes the TFLite graph."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

ARCHS = ("resnet", "vgg")


@dataclass(frozen=True)
class Config:
    """One point of the search space: architecture, input and training settings."""

    size: int = 48  # input side, pixels
    width: int = 32  # channels of the first stage; each stage doubles them
    stages: int = 4  # stages of two 3x3 convolutions, each after a stride-2 step
    dropout: float = 0.3
    lr: float = 3e-3
    weight_decay: float = 5e-4
    epochs: int = 30
    balance: float = 0.5  # class sampling weight is count**-balance: 0 keeps, 1 equalises
    label_smoothing: float = 0.1
    erase: float = 0.5  # share of the faces that get a random rectangle erased
    mixup: float = 0.0  # alpha of the Beta draw that blends each batch with a shuffled copy; 0: off
    cutmix: float = 0.0  # share of the batches (without mixup) that get a rectangle of a shuffled copy; 0: off
    distill: float = 0.0  # weight of the teachers' probabilities in the target (knowledge distillation); 0: off
    arch: str = "resnet"  # "resnet": a stride-2 step and a residual pair per stage; "vgg": two convolutions, max-pool

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(ARCHS)}")

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    """Two 3x3 convolutions with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class ExpressionNet(nn.Module):
    """A small CNN whose stages halve the side and double the channels.

    ``resnet``: a stem, then per stage a stride-2 convolution and a residual pair.
    ``vgg``: per stage two plain convolutions at the stage's side, then a 2x2 max-pool
    (the family of the published FER2013 VGG variants): another architecture errs elsewhere.
    """

    def __init__(self, config: Config, classes: int = 7) -> None:
        super().__init__()
        width = config.width
        layers: list[nn.Module] = [] if config.arch == "vgg" else [_conv(1, width)]
        cin = 1 if config.arch == "vgg" else width
        for stage in range(config.stages):
            cout = width * 2**stage
            if config.arch == "vgg":
                layers += [_conv(cin, cout), _conv(cout, cout), nn.MaxPool2d(2, ceil_mode=True)]
            else:
                layers += [_conv(cin, cout, stride=2), Residual(cout)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(cin, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of (n, 1, size, size) faces scaled to [-1, 1]."""
        # avg_pool2d over the whole map rather than mean(): the int8 quantizer
        # annotates it, so the head stays int8 instead of falling back to float.
        x = self.features(x)
        return self.head(F.avg_pool2d(x, kernel_size=x.shape[-2:]).flatten(1))


def macs(config: Config) -> int:
    """Multiply-accumulates of one forward pass, for the search's cost column."""
    if config.arch == "vgg":
        side, total, cin = config.size, 0, 1
        for stage in range(config.stages):
            cout = config.width * 2**stage
            total += 9 * side * side * (cin * cout + cout * cout)
            side, cin = math.ceil(side / 2), cout
        return total + cin * 7
    side, total, cin = config.size, 9 * config.width * config.size**2, config.width
    for stage in range(config.stages):
        cout = config.width * 2**stage
        side = math.ceil(side / 2)
        total += 9 * side * side * (cin * cout + 2 * cout * cout)
        cin = cout
    return total + cin * 7


class Deployed(nn.Module):
    """What the TFLite file holds: 8-bit pixels in, logits out.

    The input is (1, size, size, 1) grayscale with values 0..255 as float; for
    one channel that is the same memory as NCHW, so no transpose is needed.
    The softmax is left to the caller, so that the int8 graph has no float op.
    """

    def __init__(self, net: ExpressionNet, *, size: int) -> None:
        super().__init__()
        self.net = net.eval()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(1, 1, self.size, self.size) * (2 / 255) - 1
        return self.net(x)
