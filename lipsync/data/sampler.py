"""Training order as a pure function of (seed, epoch): the same run replays the same samples."""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A shuffled permutation drawn from ``default_rng([seed, epoch])``.

    Lightning calls ``set_epoch`` before every epoch; it also tells the dataset,
    whose random windows depend on the epoch too.

    Resuming mid-epoch: ``load_state_dict({"epoch": e, "start": s, ...})``
    makes the next pass over epoch ``e`` begin at sample ``s`` of its
    permutation (the samples before it were trained on already); moving to
    another epoch clears it. ``len()`` stays the full epoch, as Lightning
    expects of a resumable loader.
    """

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch, self.start = dataset, int(seed), 0, 0

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.start = 0  # a resume position belongs to the epoch it was saved in
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start:].tolist())

    def __len__(self) -> int:
        return len(self.dataset)

    def state_dict(self, samples_done: int = 0) -> dict:
        """Where training stands: ``samples_done`` samples of the current epoch are behind us."""
        return {"seed": self.seed, "epoch": self.epoch, "start": int(samples_done), "size": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["size"] != len(self.dataset):
            raise ValueError(f"cannot resume the data order: the checkpoint has seed {state['seed']} over "
                             f"{state['size']} samples, this run seed {self.seed} over {len(self.dataset)} "
                             "(the corpus or data config changed); use a new run.name")
        if not 0 <= state["start"] <= state["size"]:
            raise ValueError(f"resume position {state['start']} is outside an epoch of {state['size']} samples")
        self.set_epoch(state["epoch"])
        self.start = int(state["start"])
