"""Quantization-aware fine-tuning (PT2E fake-quant), int8 export (onnxruntime QDQ) and latency.

- `run_qat(checkpoint, cfg)`: fake-quant fine-tuning with the distillation losses still on.
- `export_run(target, int8=...)`: float / int8 ONNX of the bare student, checked in onnxruntime.
- `bench_run(target)`: params, MACs, size and 1-thread latency of teacher, float and int8.
- `onnx_latency(path, input_shape, batch, threads=1)`: median ms in onnxruntime.
- `onnx_op_profile(path, input_shape, batch)`: ms per run by operator type (where time goes).
The int8 deployment path is `distill.quant.int8.quantize_onnx` alone.
"""

from __future__ import annotations

from distill.quant.latency import onnx_latency, onnx_op_profile

__all__ = ["onnx_latency", "onnx_op_profile"]
