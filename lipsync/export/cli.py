"""``python scripts/export.py --checkpoint <ckpt or run dir> [--checkpoint ...] --out model.onnx``

Exports the plain model (several checkpoints: one graph of their mean curves), checks the graph in ONNX Runtime against the eager
model on real speech (0.3 s to 65 s, and a batch of two), prints the largest
difference, and only then writes ``model.onnx`` and ``model.json`` beside it
(both atomically). Exit codes: 0 written; 1 bad checkpoint, audio or output
path (message says what to fix); 2 usage; 3 parity above tolerance (nothing
written).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from lipsync.atomic import atomic_write
from lipsync.convert.predictor import card_path
from lipsync.export.parity import PARITY_SECONDS, PARITY_TOLERANCE

EXIT_OK, EXIT_INPUT, EXIT_PARITY = 0, 1, 3
REAL_SPEECH = Path("/usr/share/sounds/alsa")  # Debian alsa-utils: a human voice, 48 kHz
DEMO_AUDIO = Path(__file__).resolve().parents[2] / "data" / "demo" / "audio"


def default_parity_audio() -> list[Path]:
    """Human speech where alsa-utils is installed, else the demo corpus."""
    human = sorted(p for p in REAL_SPEECH.glob("*.wav") if p.stem != "Noise")
    if human:
        return human
    return sorted(p for p in DEMO_AUDIO.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))[:20]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export.py", description="Export a trained model to ONNX with a model card.")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a .ckpt file or a run dir (uses checkpoints/last.ckpt); given more than once, one graph "
                        "of the models' mean curves (an ensemble, as evaluate.py --model A --model B)")
    p.add_argument("--out", required=True, type=Path, help="output .onnx path; model card goes beside it (.json)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default %(default)s)")
    p.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE,
                   help="largest allowed |eager - onnxruntime| on curves in [0, 1] (default %(default)g)")
    p.add_argument("--parity-audio", nargs="+", type=Path, default=None,
                   help="real speech for the parity check (default: /usr/share/sounds/alsa, else data/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.suffix != ".onnx":
        print(f"error: --out {args.out}: give a path ending in .onnx", file=sys.stderr)
        return EXIT_INPUT
    card_file = card_path(args.out)
    if not args.overwrite and (args.out.exists() or card_file.exists()):
        print(f"error: {args.out} or {card_file.name} exists; pass --overwrite to replace the export", file=sys.stderr)
        return EXIT_INPUT

    from lipsync.audio import AudioError, load_audio
    from lipsync.export.card import build_model_card, write_model_card
    from lipsync.export.onnx_export import MeanOfModels, export_onnx_bytes
    from lipsync.export.parity import check_parity, parity_table, parity_waves
    from lipsync.model.checkpoint import CheckpointError, load_model

    audio_files = args.parity_audio or default_parity_audio()
    try:
        if not audio_files:
            raise AudioError("no speech found for the parity check; pass --parity-audio FILE...")
        speech = [load_audio(p) for p in audio_files]
        loaded = [load_model(c) for c in args.checkpoint]
        infos = [info for _, info in loaded]
        model = loaded[0][0] if len(loaded) == 1 else MeanOfModels([m for m, _ in loaded], args.checkpoint)
    except (AudioError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT

    started = time.perf_counter()
    data = export_onnx_bytes(model, opset=args.opset)
    export_s = time.perf_counter() - started
    results = check_parity(model, data, parity_waves(speech, PARITY_SECONDS, model.sample_rate))
    print(f"parity: eager vs onnxruntime on {len(audio_files)} speech file(s) from {audio_files[0].parent}")
    print(parity_table(results, args.tolerance))
    if max(r.max_abs_diff for r in results) > args.tolerance:
        print(f"error: exported graph differs from the eager model by more than {args.tolerance:g}; nothing written",
              file=sys.stderr)
        return EXIT_PARITY

    card = build_model_card(model, infos, args.out.name, args.opset, results, args.tolerance)
    with atomic_write(args.out, "wb") as f:
        f.write(data)
    write_model_card(card, card_file)
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB, exported in {export_s:.1f} s) and {card_file}")
    print(f"rig {card['rig']} ({len(card['channels'])} channels), {card['fps']:g} fps, encoder {card['encoder']}")
    return EXIT_OK
