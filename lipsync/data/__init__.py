"""Corpora: manifest, validation, alignment files, datasets and the demo corpus generator."""
