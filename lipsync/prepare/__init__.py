"""Bring your own data: Live Link Face CSVs, phone alignments and transcripts -> corpus folders.

Each source has its own module (``livelink``, ``alignments``, ``transcripts``);
all of them write through ``corpus_writer`` (staged folder, manifest last,
renamed into place) and end with the validation report (``report``).
"""
