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
    seed_everything,
)
from fusionrec.train.valid_metric import check_valid_metric

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
