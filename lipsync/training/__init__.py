"""Training: the LightningModule around the plain model, losses, metrics, plots and train(cfg)."""
