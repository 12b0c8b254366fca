"""One clear line per bad input: the file, what is wrong, how to fix it."""
from __future__ import annotations

from pathlib import Path

from lipsync.data.manifest import Problem


# The same one-line record as a corpus's validation problems.
InputProblem = Problem


class PrepareError(ValueError):
    """An input that cannot become part of a corpus."""

    def __init__(self, file: str | Path, problem: str, fix: str):
        self.detail = InputProblem(str(file), problem, fix)
        super().__init__(str(self.detail))


class ClipSkipped(PrepareError):
    """A clip left out because the user asked for clips like it to be skipped: listed, never fatal."""

    chosen_skip = True


class CorpusRejected(ValueError):
    """Some clips were bad and skipping was not asked for; nothing was written."""

    def __init__(self, problems: list[InputProblem]):
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(
            f"{len(problems)} bad input(s), nothing written (pass --skip-bad to build the corpus without them):\n{lines}"
        )
