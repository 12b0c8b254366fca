"""One clear line per bad input: the file, what is wrong, how to fix it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputProblem:
    file: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}; fix: {self.fix}"


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
