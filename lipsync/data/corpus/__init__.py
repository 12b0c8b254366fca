"""Synthetic speech corpora with exact phone timing: espeak-ng, MBROLA and Festival, composed text, speaker-disjoint splits."""
