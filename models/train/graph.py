"""Rewrites of a converted TFLite graph that change its speed, never its output.

    python -m models.train.graph models/fer_lite_96.tflite   # rewrite a member file in place
    python -m models.train.graph MEMBER.tflite --faces models/work/faces96.npz   # and compare its readings

litert-torch converts EfficientNet-Lite0's "same" padding (``F.pad`` before each strided or
depthwise convolution, in PyTorch's NCHW layout) as ``TRANSPOSE`` to NCHW, ``PAD``, sometimes a
``QUANTIZE`` that moves the padded values to the next op's scale, and ``TRANSPOSE`` back to NHWC:
32 transposes in the 96 px member, a large share of its inference time on one thread.
``fold_layout_pads`` pads in NHWC instead, with the same amounts on the permuted axes. Padding and
requantizing are elementwise or layout-free, so every output is the same, bit for bit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TO_NCHW = [0, 3, 1, 2]
_TO_NHWC = [0, 2, 3, 1]


def fold_layout_pads(model: bytes) -> bytes:
    """``model`` with every TRANSPOSE (to NCHW), PAD, [QUANTIZE], TRANSPOSE (to NHWC) chain padding in NHWC.

    A chain whose intermediate tensors are read by anything else, or are graph outputs, is left as it is.
    """
    graph_model = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = graph_model.subgraphs[0]
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in graph_model.operatorCodes]
    readers: dict[int, list[int]] = {}
    for index, op in enumerate(graph.operators):
        for tensor in op.inputs:
            readers.setdefault(int(tensor), []).append(index)
    outputs = {int(t) for t in graph.outputs}

    def constant(tensor: int) -> np.ndarray:
        data = graph_model.buffers[graph.tensors[tensor].buffer].data
        return np.frombuffer(bytes(data if data is not None else b""), dtype=np.int32)

    def only_reader(tensor: int, kinds: tuple[int, ...]) -> int | None:
        found = readers.get(tensor, [])
        if tensor in outputs or len(found) != 1 or codes[graph.operators[found[0]].opcodeIndex] not in kinds:
            return None
        return found[0]

    op_kind = schema.BuiltinOperator
    dropped: set[int] = set()
    for first, op in enumerate(graph.operators):
        if codes[op.opcodeIndex] != op_kind.TRANSPOSE or list(constant(op.inputs[1])) != _TO_NCHW:
            continue
        pad = only_reader(int(op.outputs[0]), (op_kind.PAD,))
        if pad is None:
            continue
        after = only_reader(int(graph.operators[pad].outputs[0]), (op_kind.QUANTIZE, op_kind.TRANSPOSE))
        quantize = None
        if after is not None and codes[graph.operators[after].opcodeIndex] == op_kind.QUANTIZE:
            quantize, after = after, only_reader(int(graph.operators[after].outputs[0]), (op_kind.TRANSPOSE,))
        if after is None or list(constant(graph.operators[after].inputs[1])) != _TO_NHWC:
            continue
        pad_op, last = graph.operators[pad], graph.operators[after]
        amounts = constant(pad_op.inputs[1]).reshape(4, 2)[_TO_NHWC]
        buffer = schema.BufferT()
        buffer.data = np.ascontiguousarray(amounts, dtype=np.int32).tobytes()
        graph_model.buffers.append(buffer)
        source = graph.tensors[pad_op.inputs[1]]
        paddings = schema.TensorT()
        paddings.shape, paddings.type = [4, 2], source.type
        paddings.buffer, paddings.name = len(graph_model.buffers) - 1, (source.name or b"") + b"/nhwc"
        graph.tensors.append(paddings)
        padded = graph.tensors[pad_op.outputs[0]]
        padded.shape = [padded.shape[axis] for axis in _TO_NHWC]
        if padded.shapeSignature is not None and len(padded.shapeSignature):
            padded.shapeSignature = [padded.shapeSignature[axis] for axis in _TO_NHWC]
        pad_op.inputs = [op.inputs[0], len(graph.tensors) - 1]
        # The chain's last op writes the second transpose's output: what the rest of the graph reads.
        (graph.operators[quantize] if quantize is not None else pad_op).outputs = [last.outputs[0]]
        dropped |= {first, after}
    graph.operators = [op for index, op in enumerate(graph.operators) if index not in dropped]
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(graph_model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_names(model: bytes) -> list[str]:
    """The builtin op of each operator of ``model``'s first graph, in order (``"TRANSPOSE"``, ``"PAD"``...)."""
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    graph_model = schema.Model.GetRootAs(model, 0)
    graph = graph_model.Subgraphs(0)
    ops = []
    for index in range(graph.OperatorsLength()):
        code = graph_model.OperatorCodes(graph.Operators(index).OpcodeIndex())
        ops.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return ops


def same_readings(before: bytes, after: bytes, faces: np.ndarray) -> int:
    """How many of ``faces`` (uint8, the member's side) the two graphs read alike, with mirror images, bit for bit."""
    from memegen.vision.ensemble import Member

    members = [Member(name, model, size=faces.shape[1], flip=True) for name, model in (("a", before), ("b", after))]
    return sum(bool(np.array_equal(members[0].predict(face), members[1].predict(face))) for face in faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="TFLite members, rewritten in place")
    parser.add_argument(
        "--faces", type=Path, help="prepare's crops at the members' side: every population's faces read by both graphs"
    )
    args = parser.parse_args()
    for path in args.files:
        before = path.read_bytes()
        after = fold_layout_pads(before)
        counts = (op_names(model).count("TRANSPOSE") for model in (before, after))
        print(f"{path}: {next(counts)} transposes before, {next(counts)} after")
        if args.faces is not None:
            with np.load(args.faces) as data:
                faces = np.concatenate([data[key] for key in data.files if key.endswith("_x")])
            print(f"{path}: {same_readings(before, after, faces):,} of {len(faces):,} faces read alike, bit for bit")
        path.write_bytes(after)


if __name__ == "__main__":
    main()
