"""Convert a trained member to TFLite and to full int8, both with litert-torch."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memegen.vision.ensemble import SINGLE_VIEW, Member, View
from models.train.graph import fold_layout_pads
from models.train.net import Deployed, ExpressionNet


def to_float_tflite(net: ExpressionNet, *, size: int) -> bytes:
    """The float32 TFLite graph of a member: (1, size, size, 1) pixels 0..255 in."""
    import litert_torch

    # litert-torch misreads channels_last weights (a silently wrong model).
    net = net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    deployed = Deployed(net, size=size).eval()
    sample = (torch.zeros(1, size, size, 1),)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "float.tflite"
        litert_torch.convert(deployed, sample).export(str(path))
        return path.read_bytes()


def to_int8_tflite(net: ExpressionNet, calibration: np.ndarray) -> bytes:
    """Full int8 (weights per channel, activations per tensor, int8 input and output logits).

    PyTorch's PT2E flow with litert-torch's quantizer: its histogram observers
    choose activation ranges that lose far less than ai-edge-quantizer's
    min/max calibration did here (0.3 against 2.3 to 3.8 points of validation
    accuracy on the FER2013 member). A convolution followed by ReLU6 is quantized
    as one op (``_annotate_conv_relu6``). Pads converted in PyTorch's layout, between two
    transposes, are rewritten to pad in TFLite's (``graph.fold_layout_pads``: the same outputs).
    """
    import litert_torch
    from litert_torch.quantize import quant_config
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    size = calibration.shape[1]
    net = net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    deployed = Deployed(net, size=size).eval()
    sample = (torch.zeros(1, size, size, 1),)
    quantizer = _quantizer()
    model = quantize_pt2e.prepare_pt2e(torch.export.export(deployed, sample).module(), quantizer)
    with torch.no_grad():
        for face in calibration:
            model(torch.from_numpy(face.astype(np.float32)).reshape(1, size, size, 1))
    model = quantize_pt2e.convert_pt2e(model, fold_quantize=False)
    # An exported graph module reports training mode; its ops are eval-mode already.
    model = move_exported_model_to_eval(model)
    edge = litert_torch.convert(model, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "int8.tflite"
        edge.export(str(path))
        return fold_layout_pads(path.read_bytes())


def tflite_predict(
    model: bytes, faces: np.ndarray, *, flip: bool = False, views: tuple[View, ...] = SINGLE_VIEW
) -> np.ndarray:
    """Probabilities of a TFLite member for uint8 faces, through the run-time code path."""
    member = Member("candidate", model, size=faces.shape[1], flip=flip, views=views)
    return np.stack([member.predict(face) for face in faces]) if len(faces) else np.zeros((0, 7), np.float32)


def _quantizer() -> Any:
    """litert-torch's PT2E quantizer, symmetric and per channel, that also fuses a convolution with ReLU6
    and quantizes every residual addition."""
    from litert_torch.quantize import pt2e_quantizer

    class Quantizer(pt2e_quantizer.PT2EQuantizer):  # type: ignore[misc]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            # First, so that the stock annotators leave these convolutions alone.
            _annotate_conv_relu6(model, self.global_config)
            model = super().annotate(model)
            _annotate_residual_adds(model, self.global_config)
            return model

    return Quantizer().set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))


def _annotate_conv_relu6(model: torch.fx.GraphModule, config: Any) -> None:
    """Annotate each convolution whose only use is a ReLU6 as one quantized op, observed after the clamp.

    litert-torch's quantizer fuses a convolution with ReLU but not with ReLU6 (``hardtanh``), whose
    output it quantizes with its input's parameters: the convolution's whole unclamped range, of
    which the clamped 0..6 gets a few dozen of the 256 steps. EfficientNet-Lite0 has ReLU6 after
    every expansion and depthwise convolution; unfused, its int8 graph read FER2013's validation
    faces 7.4 points below its float weights, fused 0.4 (the fused op is what TFLite runs anyway).
    """
    from litert_torch.quantize import pt2e_quantizer_utils as q
    from torch.fx import Node

    convolutions = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    clamps = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in clamps:
            continue
        conv = node.args[0]
        if tuple(node.args[1:3]) != (0.0, 6.0) or not isinstance(conv, Node) or conv.target not in convolutions:
            continue
        if len(conv.users) != 1:  # the unclamped output is read elsewhere too: it needs its own range
            continue
        inputs = {conv.args[0]: q.get_input_act_qspec(config), conv.args[1]: q.get_weight_qspec(config)}
        partition = [node, conv, conv.args[1]]
        bias = conv.args[2] if len(conv.args) > 2 else None
        if isinstance(bias, Node):
            inputs[bias] = q.get_bias_qspec(config)
            partition.append(bias)
        if q._is_annotated(partition):
            continue
        conv.meta["quantization_annotation"] = q.QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
        node.meta["quantization_annotation"] = q.QuantizationAnnotation(
            output_qspec=q.get_output_act_qspec(config), _annotated=True
        )
        q._mark_nodes_as_annotated(partition)


def _annotate_residual_adds(model: torch.fx.GraphModule, config: Any) -> None:
    """Annotate every addition of two activations the stock annotator left alone.

    litert-torch's add annotator takes one node of each source partition, and the residual additions of
    consecutive blocks (one block's sum is the next one's skip input) form one partition: it quantized the
    first and left the rest in float, between a dequantize and a quantize (EfficientNet-Lite0 kept 7 of its
    9 residual additions in float32).
    """
    from litert_torch.quantize import pt2e_quantizer_utils as q
    from torch.fx import Node

    for node in model.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.add.Tensor:
            continue
        if "quantization_annotation" in node.meta or not all(isinstance(a, Node) for a in node.args[:2]):
            continue
        node.meta["quantization_annotation"] = q.QuantizationAnnotation(
            input_qspec_map={a: q.get_input_act_qspec(config) for a in node.args[:2]},
            output_qspec=q.get_output_act_qspec(config),
            _annotated=True,
        )
