"""Fixtures shared by the training tests."""
import pytest

from fusionrec.evaluate.evaluator import Evaluator


@pytest.fixture
def evaluated_splits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The split of every ``Evaluator.evaluate`` call made during the test, in order (to prove
    that model selection never reads test)."""
    splits: list[str] = []
    real = Evaluator.evaluate

    def spy(self, model, split="valid", **kw):
        splits.append(split)
        return real(self, model, split=split, **kw)

    monkeypatch.setattr(Evaluator, "evaluate", spy)
    return splits
