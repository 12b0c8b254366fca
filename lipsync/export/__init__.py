"""Export: the plain model -> one ONNX graph (dynamic batch and time) + a model card, checked for parity."""
