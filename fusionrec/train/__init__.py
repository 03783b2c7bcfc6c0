"""Training: one trainer for every model, and the samplers for its batch kinds."""
from fusionrec.train.sampling import (
    PairwiseSampler,
    PointwiseSampler,
    Sampler,
    UserSampler,
    make_sampler,
    sample_negatives,
)
from fusionrec.train.trainer import CHECKPOINT_NAME, Trainer, TrainResult, seed_everything

__all__ = [
    "Trainer", "TrainResult", "seed_everything", "CHECKPOINT_NAME",
    "Sampler", "PairwiseSampler", "PointwiseSampler", "UserSampler", "make_sampler", "sample_negatives",
]
