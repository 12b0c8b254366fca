"""Batch conversion: audio files and folders -> curves in every output format, sharded, in bounded memory.

``predictor`` (ONNX or checkpoint) -> ``stream`` (blocks of 16 kHz audio) -> ``chunking`` (overlapping
windows, cross-faded) -> ``lipsync.curves.postprocess`` -> ``lipsync.curves.writers``; ``runner`` does it
for many files, ``cli`` is ``scripts/convert.py``.
"""
