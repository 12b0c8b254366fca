"""Names of what a checkpoint holds, in one place (readers and writers share them).

A checkpoint is Lightning's checkpoint dict (model, optimizer, schedulers,
precision/AMP scaler, loops, callbacks) plus one section of ours, ``RESUME``,
with what Lightning does not store. Everything in it is a plain container or a
tensor, so ``torch.load(weights_only=True)`` reads it.
"""

# Lightning's own keys that we read.
STATE_DICT = "state_dict"
GLOBAL_STEP = "global_step"
EPOCH = "epoch"
OPTIMIZER_STATES = "optimizer_states"

# Our section.
RESUME = "lipsync_resume"
DATA_POSITION = "data_position"   # EpochSampler.state_dict(): seed, epoch, start (samples done), size
BATCHES_IN_EPOCH = "batches_in_epoch"
RNG = "rng"                       # lipsync.checkpointing.rng.capture_rng()
REASON = "reason"                 # why this save happened: steps | minutes | signal | health | best | final
BEST = "best"                     # {"monitor", "mode", "value", "step"} or None

# Manifest fields (the JSON file beside each checkpoint, written last).
MANIFEST_FORMAT = 1
