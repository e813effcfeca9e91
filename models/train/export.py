"""Convert a trained member to TFLite (litert-torch) and to full int8 (ai-edge-quantizer)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from memegen.ensemble import Member
from models.train.net import Deployed, ExpressionNet

SIGNATURE = "serving_default"


def to_float_tflite(net: ExpressionNet, *, size: int) -> bytes:
    """The float32 TFLite graph of a member: (1, size, size, 1) pixels 0..255 in."""
    import litert_torch

    deployed = Deployed(net, size=size).eval()
    sample = (torch.zeros(1, size, size, 1),)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "float.tflite"
        litert_torch.convert(deployed, sample).export(str(path))
        return path.read_bytes()


def to_int8_tflite(float_model: bytes, calibration: np.ndarray) -> bytes:
    """Full int8 (weights and activations, int8 input and output), calibrated on uint8 faces."""
    from ai_edge_quantizer import quantizer, recipe

    from memegen.runtime import Interpreter

    interpreter = Interpreter(model_content=float_model)
    input_name = interpreter.get_signature_list()[SIGNATURE]["inputs"][0]
    size = calibration.shape[1]
    samples = [{input_name: face.astype(np.float32).reshape(1, size, size, 1)} for face in calibration]
    quant = quantizer.Quantizer(bytearray(float_model), recipe.static_wi8_ai8())
    result = quant.quantize(quant.calibrate({SIGNATURE: samples}, num_threads=2), enable_progress_report=False)
    return bytes(result.quantized_model)


def tflite_predict(model: bytes, faces: np.ndarray, *, input_blur: float = 0.0) -> np.ndarray:
    """Probabilities of a TFLite member for uint8 faces, through the run-time code path."""
    member = Member("candidate", model, size=faces.shape[1], input_blur=input_blur)
    return np.stack([member.predict(face) for face in faces]) if len(faces) else np.zeros((0, 7), np.float32)
