"""Fixtures for health tests: a few-parameter Lightning model trained on CPU, and the shipped fault timelines."""
from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FAULTS = REPO / "configs" / "health" / "faults"


class TinyRegressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=gen)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def fit_tiny(callbacks, max_steps: int = 30) -> tuple[pl.Trainer, BaseException | None]:
    """Train the tiny model; return the trainer and the exception fit raised (None if it finished)."""
    trainer = pl.Trainer(max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=callbacks)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        try:
            trainer.fit(TinyRegressor())
        except Exception as e:  # the test inspects it (HealthStop)
            return trainer, e
    return trainer, None


@pytest.fixture(name="fit_tiny")
def fit_tiny_fixture():
    return fit_tiny


@pytest.fixture
def faults() -> Path:
    return FAULTS
