"""Data layer: the Dataset, readers, validation, splits and the demo generator."""
from fusionrec.data.dataset import Dataset, FeatureModality, TrainData

__all__ = ["Dataset", "FeatureModality", "TrainData"]
