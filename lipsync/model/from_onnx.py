"""Rebuild the trainable model from an exported ``.onnx`` and its card, so an export can be fine-tuned.

The card's ``model_config`` builds the architecture; the weights come from the
graph's initializers. Most keep their parameter names. The rest the exporter
rewrote: a GRU layer becomes one ``GRU`` node whose gates are stored z, r, h
(PyTorch: r, z, n) with both bias vectors joined, and a linear layer on a
sequence becomes a ``MatMul`` by its transposed weight. Those are mapped back in
graph order. Equal tensors (e.g. layer norms still at their initial ones) are
stored once, the others named by ``Identity`` nodes. Parameters the graph does
not hold as such (a wav2vec2 encoder's weight-normed convolution, folded into
one tensor) are refused: fine-tune such a model from its checkpoint. The
result is only returned after it reproduces the graph's output in ONNX Runtime
(``lipsync.export.parity``): a wrong mapping fails here, never later as a
silently different model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lipsync.model import LipSyncModel, build_model
from lipsync.model.checkpoint import CheckpointError

CHECK_SECONDS = (1.0, 3.7)  # lengths of the test signal the rebuilt model must reproduce the graph on


def load_exported(onnx_path: str | Path) -> tuple[LipSyncModel, dict[str, Any]]:
    """(model in eval mode with the graph's weights, the model card) of an exported model."""
    import onnx
    from onnx import numpy_helper

    from lipsync.convert.predictor import ModelLoadError, card_path, read_model_card

    onnx_path = Path(onnx_path)
    onnx_path = onnx_path / "model.onnx" if onnx_path.is_dir() else onnx_path
    try:
        card = read_model_card(onnx_path)
    except ModelLoadError as e:
        raise CheckpointError(str(e)) from None
    if not card.get("model_config"):
        raise CheckpointError(f"{card_path(onnx_path)}: the card has no model_config (exported by an older "
                              "lipsync), so the architecture cannot be rebuilt; export the model again from its "
                              "checkpoint with scripts/export.py, or pass the checkpoint itself")
    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{onnx_path}: cannot read the ONNX graph ({e})") from e
    model = build_model(card["model_config"])
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in _nodes(graph, "Identity"):  # a deduplicated tensor under its other names
        if node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    state = _named(model, weights)
    state.update(_gru_layers(model, graph, weights))
    state.update(_matmul_linears(model, graph, weights, done=set(state)))
    missing = [name for name, _ in model.named_parameters() if name not in state]
    if missing:
        raise CheckpointError(f"{onnx_path}: found no weights in the graph for {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}; fine-tune from the model's checkpoint instead")
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    _check_reproduces(model, onnx_path)
    return model.eval(), card


def _named(model: nn.Module, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameters the exporter kept under their own names."""
    return {name: weights[name] for name, p in model.named_parameters()
            if name in weights and tuple(weights[name].shape) == tuple(p.shape)}


def _nodes(graph, op_type: str) -> list:
    return [n for n in graph.node if n.op_type == op_type]


def _gru_layers(model: nn.Module, graph, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """nn.GRU layers, in module order, from the graph's GRU nodes in graph order."""
    layers = [(name, module, layer) for name, module in model.named_modules() if isinstance(module, nn.GRU)
              for layer in range(module.num_layers)]
    nodes = _nodes(graph, "GRU")
    if len(nodes) != len(layers):
        raise CheckpointError(f"the graph has {len(nodes)} GRU layers, the card's architecture {len(layers)}")
    state = {}
    for (name, module, layer), node in zip(layers, nodes):
        attributes = {a.name: a.i for a in node.attribute if a.type == a.INT}
        if attributes.get("linear_before_reset") != 1:
            raise CheckpointError(f"GRU node {node.name}: not exported from torch.nn.GRU (linear_before_reset != 1)")
        if not all(len(node.input) > i and node.input[i] in weights for i in (1, 2, 3)):
            raise CheckpointError(f"GRU node {node.name}: its weights or biases are not stored constants")
        w, r, b = (weights[node.input[i]] for i in (1, 2, 3))
        hidden = module.hidden_size
        for direction, suffix in enumerate(("", "_reverse")[: w.shape[0]]):
            key = f"{name}.%s_l{layer}{suffix}"
            state[key % "weight_ih"] = _torch_gates(w[direction], hidden)
            state[key % "weight_hh"] = _torch_gates(r[direction], hidden)
            state[key % "bias_ih"] = _torch_gates(b[direction][: 3 * hidden], hidden)
            state[key % "bias_hh"] = _torch_gates(b[direction][3 * hidden :], hidden)
    return state


def _torch_gates(stacked: np.ndarray, hidden: int) -> np.ndarray:
    """ONNX gate order (update z, reset r, new h) -> PyTorch's (r, z, n)."""
    z, r, h = stacked[:hidden], stacked[hidden : 2 * hidden], stacked[2 * hidden :]
    return np.concatenate([r, z, h])


def _matmul_linears(model: nn.Module, graph, weights: dict[str, np.ndarray], done: set[str]) -> dict[str, np.ndarray]:
    """Linear weights the graph holds transposed as MatMul constants, matched in order by shape."""
    candidates = [weights[n.input[1]] for n in _nodes(graph, "MatMul") if n.input[1] in weights]
    state = {}
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(module, nn.Linear) or key in done:
            continue
        wanted = (module.in_features, module.out_features)
        for i, candidate in enumerate(candidates):
            if candidate.shape == wanted:
                state[key] = candidates.pop(i).T
                break
    return state


def _check_reproduces(model: LipSyncModel, onnx_path: Path) -> None:
    from lipsync.export.parity import PARITY_TOLERANCE, check_parity

    rng = np.random.default_rng(0)
    n = int(max(CHECK_SECONDS) * model.sample_rate)
    t = np.arange(n) / model.sample_rate
    # Voiced sweeps with noise bursts: enough variety that any misplaced weight shows in the curves.
    signal = 0.3 * np.sin(2 * np.pi * (120 + 40 * np.sin(2 * np.pi * 0.7 * t)) * t) * (np.sin(2 * np.pi * 2.3 * t) > -0.3)
    signal += 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * 1.1 * t) > 0.5)
    waves = [signal[: int(s * model.sample_rate)].astype(np.float32) for s in CHECK_SECONDS]
    worst = max(r.max_abs_diff for r in check_parity(model, onnx_path, waves))
    if not worst <= PARITY_TOLERANCE:
        raise CheckpointError(f"{onnx_path}: the weights read back from the graph do not reproduce it "
                              f"(largest curve difference {worst:.2g} > {PARITY_TOLERANCE:g}); fine-tune from "
                              "the model's checkpoint instead")
