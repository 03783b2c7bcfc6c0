"""Training: one trainer for every model, and the samplers for its batch kinds."""
from fusionrec.train.sampling import (
    PairwiseSampler,
    PointwiseSampler,
    Sampler,
    UserSampler,
    make_sampler,
    sample_negatives,
)
from fusionrec.train.trainer import (
    CHECKPOINT_NAME,
    Trainer,
    TrainResult,
    check_valid_metric,
    seed_everything,
)

__all__ = [
    "CHECKPOINT_NAME",
    "PairwiseSampler",
    "PointwiseSampler",
    "Sampler",
    "TrainResult",
    "Trainer",
    "UserSampler",
    "check_valid_metric",
    "make_sampler",
    "sample_negatives",
    "seed_everything",
]
