"""Sequential (next-item) recommenders: SASRec and GRU4Rec over ID, content or both item vectors.

See :mod:`fusionrec.models.sequential.base` for what they share (time-ordered histories,
losses, scoring, :meth:`~fusionrec.models.sequential.base.SequentialRecModel.predict_from_history`)
and ``docs/guide/sequential.md`` for how to train, evaluate and serve them.
"""
from fusionrec.models.sequential.base import SequentialRecModel
from fusionrec.models.sequential.content_knn import SeqContentKNN
from fusionrec.models.sequential.gru4rec import GRU4Rec, MMGRU4Rec
from fusionrec.models.sequential.sasrec import MMSASRec, SASRec

__all__ = ["GRU4Rec", "MMGRU4Rec", "MMSASRec", "SASRec", "SeqContentKNN", "SequentialRecModel"]
