"""Rebuild the trainable model from an exported ``.onnx`` and its card, so an export can be fine-tuned.

The card's ``model_config`` builds the architecture; the weights come from the
graph's initializers. Most keep their parameter names. The rest the exporter
rewrote, and they are found again by the scope the exporter names each node
with (the module's name) or, for GRU layers, in graph order:
- a GRU layer is one ``GRU`` node whose gates are stored z, r, h (PyTorch:
  r, z, n) with both bias vectors joined;
- a linear layer on a sequence is a ``MatMul`` by its transposed weight;
- a group norm's scale and shift are the ``Mul`` and ``Add`` after an
  ``InstanceNormalization``;
- a weight-normed convolution (wav2vec2's positional one) keeps only the weight
  it computes, which comes back as the direction, with its norm as the
  magnitude: the same weight;
- equal tensors (e.g. layer norms still at their initial values) are stored
  once, the others named by ``Identity`` nodes.
wav2vec2's mask embedding is used in training only, so no graph holds it; it
keeps its fresh initialisation. Any other parameter the graph does not hold is
refused: fine-tune such a model from its checkpoint. The result is only
returned after it reproduces the graph's output in ONNX Runtime
(``lipsync.export.parity``): a wrong mapping fails here, never later as a
silently different model.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lipsync.model import LipSyncModel, build_model
from lipsync.model.checkpoint import CheckpointError

CHECK_SECONDS = (1.0, 3.7)  # lengths of the test signal the rebuilt model must reproduce the graph on
TRAINING_ONLY = ("masked_spec_embed",)  # parameters inference never reads, so no graph holds them

log = logging.getLogger(__name__)


def load_exported(onnx_path: str | Path) -> tuple[LipSyncModel, dict[str, Any]]:
    """(model in eval mode with the graph's weights, the model card) of an exported model."""
    import onnx
    from onnx import numpy_helper

    from lipsync.convert.predictor import ModelLoadError, card_path, onnx_file, read_model_card

    onnx_path = onnx_file(onnx_path)
    try:
        card = read_model_card(onnx_path)
    except ModelLoadError as e:
        raise CheckpointError(str(e)) from None
    if card.get("architecture", {}).get("class") == "MeanOfModels":
        runs = [m["training_run"].get("run_dir") or m["training_run"].get("checkpoint")
                for m in card["architecture"]["members"]]
        raise CheckpointError(f"{onnx_path}: an ensemble of {len(runs)} models (their mean curves), not one model "
                              f"that can be trained; fine-tune one of its members instead: {', '.join(map(str, runs))}")
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
    scoped = _nodes_by_module(graph)
    state = _named(model, weights)
    state.update(_gru_layers(model, graph, weights))
    state.update(_matmul_linears(model, scoped, weights, done=set(state)))
    state.update(_group_norms(model, scoped, weights))
    state.update(_weight_norms(model, scoped, weights))
    missing = [name for name, _ in model.named_parameters() if name not in state]
    fresh = [name for name in missing if name.rsplit(".", 1)[-1] in TRAINING_ONLY]
    if fresh:
        log.info("%s: not in the graph (used in training only), so left at a fresh initialisation: %s",
                 onnx_path, ", ".join(fresh))
    missing = [name for name in missing if name not in fresh]
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


def _matmul_linears(model: nn.Module, scoped: dict, weights: dict[str, np.ndarray], done: set[str]) -> dict[str, np.ndarray]:
    """Linear weights the graph holds transposed as the constant of the MatMul in the layer's scope.

    By scope, not by shape in graph order: attention computes q before k and v, which are defined k, v, q.
    """
    state = {}
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(module, nn.Linear) or key in done:
            continue
        wanted = (module.in_features, module.out_features)
        constants = [n.input[1] for n in scoped[name, "MatMul"]
                     if n.input[1] in weights and weights[n.input[1]].shape == wanted]
        if len(constants) == 1:
            state[key] = weights[constants[0]].T
    return state


def _nodes_by_module(graph) -> dict[tuple[str, str], list]:
    """(module name, op type) -> its nodes, from the scope the exporter names each node with:
    ``/head/blocks.0/ff/ff.0/MatMul`` is a MatMul of ``head.blocks.0.ff.0`` (a called Sequential's children are
    scoped ``ff/ff.0``, a ModuleList's ``blocks.0``)."""
    scoped = defaultdict(list)
    for node in graph.node:
        parts = node.name.strip("/").split("/")[:-1]
        module = ".".join(p for i, p in enumerate(parts)
                          if not (i + 1 < len(parts) and parts[i + 1].startswith(p + ".")))
        scoped[module, node.op_type].append(node)
    return scoped


def _group_norms(model: nn.Module, scoped: dict, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """GroupNorm scale and shift: the constants of the Mul and Add that follow its InstanceNormalization."""
    state = {}
    for name, module in model.named_modules():
        if not (isinstance(module, nn.GroupNorm) and module.affine):
            continue
        for op, key in (("Mul", "weight"), ("Add", "bias")):
            constants = [i for n in scoped[name, op] for i in n.input if i in weights]
            if len(constants) == 1 and weights[constants[0]].size == module.num_channels:
                state[f"{name}.{key}"] = weights[constants[0]].reshape(module.num_channels)
    return state


def _weight_norms(model: nn.Module, scoped: dict, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A weight-normed Conv's magnitude g and direction v from the one weight the graph computed from them."""
    state = {}
    for name, module in model.named_modules():
        parametrizations = getattr(module, "parametrizations", None)
        if not isinstance(module, nn.Conv1d) or parametrizations is None or "weight" not in parametrizations:
            continue
        convs = [n for n in scoped[name, "Conv"] if n.input[1] in weights]
        norm = parametrizations.weight[0]
        if len(convs) != 1 or not hasattr(norm, "dim"):
            continue
        weight = torch.from_numpy(np.array(weights[convs[0].input[1]]))
        state[f"{name}.parametrizations.weight.original0"] = torch.norm_except_dim(weight, 2, norm.dim).numpy()
        state[f"{name}.parametrizations.weight.original1"] = weight.numpy()
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
