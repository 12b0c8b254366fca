"""lipsync: speech audio -> mouth-shape animation curves."""

__version__ = "0.1.0"
