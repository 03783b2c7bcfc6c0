"""The public Python API (fusionrec.load_data, fusionrec.Recommender) and the README snippet."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fusionrec
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

README = Path(__file__).resolve().parents[1] / "README.md"
# The README's demo size. The demo shop and its text/image features go to $FUSIONREC_CACHE (default
# ~/.cache/fusionrec) as `fusionrec demo` does, so only the first run pays for generating and encoding
# them; the feature store is keyed by encoder and content hash, so a reused vector is always the same one.
DEMO = {"n_users": 300, "n_items": 150}


@pytest.fixture(scope="module")
def cold_data() -> tuple[Dataset, str]:
    """The small demo shop with one item whose every interaction is in the test split."""
    data = fusionrec.load_data("demo", demo=DEMO)
    inter = data.interactions
    row = int(inter["item"].value_counts().idxmin())  # the least-bought item becomes a cold one
    split = inter["split"].to_numpy(object).copy()
    split[inter["item"].to_numpy() == row] = "test"
    return data.with_split(split), str(data.item_ids[row])


@pytest.fixture(scope="module")
def mmgraph(cold_data: tuple[Dataset, str]) -> fusionrec.Recommender:
    return fusionrec.Recommender("mmgraph", embedding_size=16).fit(cold_data[0], epochs=3, progress=False)


def _leading_zero_frames() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users = [f"{u:03d}" for u in range(40)]         # "000" ... "039"
    items = [f"00{i:02d}" for i in range(30)]       # "0000" ... "0029"
    rows = [(u, items[j]) for u in users for j in rng.choice(len(items), 8, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


# ---------------------------------------------------------------------- README
def readme_python_snippet() -> str:
    """The ```python block of README's "Use from Python" section."""
    text = README.read_text()
    section = re.search(r"^## Use from Python\n(.*?)(?=^## )", text, flags=re.DOTALL | re.MULTILINE)
    assert section, "README.md has no '## Use from Python' section"
    block = re.search(r"```python\n(.*?)```", section.group(1), flags=re.DOTALL)
    assert block, "the 'Use from Python' section has no ```python block"
    return block.group(1)


def test_readme_python_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # running the README snippet verbatim is the point of this test
        exec(compile(readme_python_snippet(), str(README), "exec"), {"__name__": "__readme__"})  # noqa: S102
    printed = out.getvalue()
    assert "rank" in printed and "similar_item" in printed, printed
    saved = list(tmp_path.rglob("model.yaml"))
    assert saved, "the snippet saves a model folder that fusionrec serve can read"


# ---------------------------------------------------------------------- ids
def test_ids_round_trip_as_original_strings(tmp_path: Path) -> None:
    _leading_zero_frames().to_csv(tmp_path / "interactions.csv", index=False)
    (tmp_path / "fusionrec.yaml").write_text(
        "data:\n  name: zeros\n  format: csv\n  path: interactions.csv\n"
        "  columns: {user: user_id, item: item_id}\n  split: {method: random, seed: 1}\n")
    data = fusionrec.load_data(tmp_path)
    assert "007" in set(data.user_ids) and "0007" in set(data.item_ids)

    rec = fusionrec.Recommender("bpr", embedding_size=8).fit(data, epochs=2, progress=False)
    top = rec.recommend(["007", "012"], k=3)
    assert list(top.columns) == ["user", "rank", "item", "score"]
    assert top["user"].tolist() == ["007"] * 3 + ["012"] * 3
    assert top["rank"].tolist() == [1, 2, 3] * 2
    assert all(isinstance(i, str) and len(i) == 4 and i.startswith("00") for i in top["item"])
    scores = rec.score("007", top["item"].tolist()[:3])
    np.testing.assert_allclose(scores["score"].to_numpy(), top["score"].to_numpy()[:3], rtol=1e-6)

    with pytest.raises(UserError, match="unknown user id 7 .*leading zeros") as err:
        rec.recommend(7)
    assert "Recommender.user_ids" in err.value.fix
    with pytest.raises(UserError, match="unknown item id 'nope'"):
        rec.similar_items("nope")


# ---------------------------------------------------------------------- queries
def test_exclude_seen(mmgraph: fusionrec.Recommender) -> None:
    data = mmgraph.dataset
    user = str(data.user_ids[5])
    seen = set(data.item_ids[data.interactions.loc[data.interactions["user"] == 5, "item"]])
    assert seen
    full = mmgraph.recommend(user, k=data.n_items, exclude_seen=False)
    assert len(full) == data.n_items and seen <= set(full["item"])
    unseen = mmgraph.recommend(user, k=data.n_items)
    assert len(unseen) == data.n_items - len(seen) and not seen & set(unseen["item"])
    # the unseen ranking is the full ranking with the seen items taken out
    assert full[~full["item"].isin(seen)]["item"].tolist() == unseen["item"].tolist()
    assert unseen["rank"].tolist() == list(range(1, len(unseen) + 1))


def test_save_and_load_give_identical_answers(mmgraph: fusionrec.Recommender, tmp_path: Path) -> None:
    users = [str(u) for u in mmgraph.user_ids[:4]]
    path = mmgraph.save(tmp_path / "model")
    assert (path / "model.yaml").is_file() and (path / "features.json").is_file()
    loaded = fusionrec.Recommender.load(path)
    assert loaded.model_name == "mmgraph" and loaded.params["embedding_size"] == 16
    pd.testing.assert_frame_equal(loaded.recommend(users, k=10), mmgraph.recommend(users, k=10))
    items = [str(i) for i in mmgraph.item_ids[:3]]
    pd.testing.assert_frame_equal(loaded.similar_items(items, k=5), mmgraph.similar_items(items, k=5))
    assert loaded.evaluate("test") == pytest.approx(mmgraph.evaluate("test"))

    # the folder is a served model: `fusionrec serve --model PATH` builds this service from it
    from fusionrec.serve.config import ServeConfig
    from fusionrec.serve.loader import load_service

    service = load_service(path, ServeConfig(db_path=str(tmp_path / "events.sqlite3")), encoder=None)
    answer = service.recommend_user(users[0], k=5)
    assert len(answer["items"]) == 5 and all(i["item_id"] in set(mmgraph.item_ids) for i in answer["items"])


def test_similar_items_of_an_item_never_seen_in_training(cold_data: tuple[Dataset, str],
                                                        mmgraph: fusionrec.Recommender) -> None:
    data, cold = cold_data
    row = data.item_index(cold)
    assert mmgraph.dataset.interaction_matrix("train")[:, row].nnz == 0
    similar = mmgraph.similar_items(cold, k=5)
    assert len(similar) == 5 and cold not in set(similar["similar_item"])
    assert similar["item"].eq(cold).all() and np.isfinite(similar["score"]).all()
    assert similar["score"].is_monotonic_decreasing

    id_only = fusionrec.Recommender("bpr", embedding_size=8).fit(data, epochs=1, progress=False)
    with pytest.raises(UserError, match="no training interactions") as err:
        id_only.similar_items(cold)
    assert "mmgraph" in err.value.fix
    # an ID-only model never proposes such an item as similar to a warm one either
    warm = str(data.item_ids[data.interactions.loc[data.interactions["split"] == "train", "item"].iloc[0]])
    assert cold not in set(id_only.similar_items(warm, k=data.n_items)["similar_item"])


# ---------------------------------------------------------------------- errors
def test_unknown_parameter_names_the_closest() -> None:
    with pytest.raises(UserError, match="embedding_size"):
        fusionrec.Recommender("mmgraph", embeding_size=8)
    with pytest.raises(UserError, match="did you mean 'mmgraph'"):
        fusionrec.Recommender("mmgrph")


def test_unfitted_and_bad_training_settings(cold_data: tuple[Dataset, str]) -> None:
    rec = fusionrec.Recommender("pop")
    with pytest.raises(UserError, match="not fitted") as err:
        rec.recommend("user00001")
    assert "fit(dataset)" in err.value.fix
    with pytest.raises(UserError, match="'learning_rate' is not a training setting") as err:
        rec.fit(cold_data[0], learning_rate=0.1)
    assert "'lr'" in err.value.fix
    with pytest.raises(UserError, match="epochs") as err:
        rec.fit(cold_data[0], epochs="many")
    assert "default 300" in err.value.fix


def test_load_data_sources(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no interactions here\n")
    with pytest.raises(UserError) as err:
        fusionrec.load_data(tmp_path)  # nothing to inspect: the fix is to describe the folder
    assert "fusionrec data init" in err.value.fix
    with pytest.raises(UserError, match="not a data file") as err:
        fusionrec.load_data(tmp_path / "notes.txt")
    assert f"fusionrec.load_data({str(tmp_path)!r})" in err.value.fix
    with pytest.raises(UserError, match="neither a folder, a YAML file nor a dataset preset"):
        fusionrec.load_data("no-such-dataset")
    with pytest.raises(UserError, match="invalid data description"):
        fusionrec.load_data("demo", kcore="many")
