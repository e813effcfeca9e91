"""One TFLite runtime for every model: LiteRT, or tflite-runtime where LiteRT is absent."""

from __future__ import annotations

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - only on machines without ai-edge-litert
    from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]

__all__ = ["Interpreter", "make_interpreter"]


def make_interpreter(model: bytes, *, threads: int = 1) -> Interpreter:
    """Build an interpreter from model bytes, with tensors allocated."""
    interpreter = Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter
