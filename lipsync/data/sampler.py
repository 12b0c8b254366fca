"""Training order as a pure function of (seed, epoch): the same run replays the same samples."""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A shuffled permutation drawn from ``default_rng([seed, epoch])``.

    Lightning calls ``set_epoch`` before every epoch; it also tells the dataset,
    whose random windows depend on the epoch too.
    """

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return len(self.dataset)
