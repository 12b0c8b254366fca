"""Synthetic speech corpora from espeak-ng: exact phone timing, composed text, speaker-disjoint splits."""
