"""Sequential models: time-ordered histories, the sequence batch kind, order sensitivity,
leave-one-out context at test time, cold items through content, save / load."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset
from fusionrec.data.split import apply_split, leave_last_out_split
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.slices import slice_metrics
from fusionrec.models.registry import build_model, model_class
from fusionrec.train import Trainer
from fusionrec.train.sequence_sampling import SequenceSampler, user_sequences
from tests.models.seq_worlds import cycle_world

SEQ_MODELS = ("sasrec", "gru4rec", "mm_sasrec", "mm_gru4rec")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # these models are tiny: a second intra-op thread only spins (and on a shared machine, slows)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world():
    raw = cycle_world(seed=0)
    out = leave_last_out_split(raw)
    out.cold = raw.cold  # test-only attribute of the world
    return out


def _fit(model, ds, epochs: int = 25, metric: str = "recall@5"):
    cfg = TrainConfig(epochs=epochs, batch_size=256, lr=0.01, patience=4, valid_metric=metric,
                      checkpoint=False, progress=False, seeds=[0])
    Trainer(model, ds.train_data(), cfg, Evaluator(ds, ks=(1, 5)), seed=0).fit()
    return model.eval()


# ---------------------------------------------------------------------- data
def test_histories_follow_timestamps_not_row_order():
    frame = pd.DataFrame({"user": [0, 0, 0, 1, 1], "item": [5, 3, 4, 1, 2],
                          "timestamp": [30.0, 10.0, 20.0, 7.0, 7.0], "label": np.nan})
    indptr, items = user_sequences(frame.sample(frac=1.0, random_state=3).sort_index(), 3)
    assert items[indptr[0]:indptr[1]].tolist() == [3, 4, 5]
    assert items[indptr[1]:indptr[2]].tolist() == [1, 2]        # a tie keeps row order
    assert indptr[3] == indptr[2]                               # user 2 has no history


def test_leave_last_out_is_by_time_and_selectable_from_config():
    ds = cycle_world(seed=1)
    rows = ds.interactions[["user", "item", "timestamp"]].sample(frac=1.0, random_state=0).reset_index(drop=True)
    split = apply_split(Dataset("shuffled", ds.user_ids, ds.item_ids, rows), "leave_last_out")
    inter = split.interactions
    last = inter.loc[inter.groupby("user")["timestamp"].idxmax()]
    assert (last["split"] == "test").all()
    second = inter[inter["split"] != "test"].groupby("user")["timestamp"].idxmax()
    assert (inter.loc[second, "split"] == "valid").all()


def test_sampler_trains_every_transition_once_with_its_context(world):
    td = world.train_data()
    sampler = SequenceSampler(td, batch_size=40, max_len=4)
    indptr, seq = user_sequences(td.train_frame, td.n_users)
    seen = []
    for batch in sampler.epoch(np.random.default_rng(5)):
        assert batch["input"].shape[1] == 4 and len(batch["user"]) <= 10
        for u, inp, tgt in zip(batch["user"].tolist(), batch["input"], batch["target"]):
            hist = seq[indptr[u]:indptr[u + 1]]
            for t in np.flatnonzero(tgt.numpy()):
                # the target follows the item at the same column, and the row holds the history before it
                pos = [i for i in range(1, len(hist)) if hist[i] + 1 == tgt[t] and hist[i - 1] + 1 == inp[t]]
                assert pos, "a target does not follow its input item"
                ctx = inp[: t + 1].numpy()
                assert ctx[ctx > 0].tolist() == (hist[max(0, pos[0] - len(ctx[ctx > 0])):pos[0]] + 1).tolist()
                seen.append((u, int(tgt[t])))
    expected = [(u, int(i) + 1) for u in range(td.n_users) for i in seq[indptr[u] + 1:indptr[u + 1]]]
    assert sorted(seen) == sorted(expected)


def test_sampled_softmax_batches_carry_negatives(world):
    model = build_model("sasrec", world.train_data(), {"loss": "sampled", "num_negatives": 7, "max_len": 8})
    sampler = SequenceSampler(world.train_data(), 64, model.num_negatives, **model.sampler_options())
    batch = next(sampler.epoch(np.random.default_rng(0)))
    assert batch["negatives"].shape == (*batch["input"].shape, 7)
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.items.item_id.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------- order matters (acceptance 3)
@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_shuffling_a_history_changes_the_output(world, name):
    model = _fit(build_model(name, world.train_data(), {"max_len": 12}), world, epochs=12)
    types = np.arange(world.n_items) % 6
    hist = model.history(3)
    before = model.predict_from_history(hist)
    rng = np.random.default_rng(0)
    shuffled = hist.copy()
    while types[shuffled[-1]] == types[hist[-1]]:
        shuffled = rng.permutation(hist)
    after = model.predict_from_history(shuffled)
    assert not torch.allclose(before, after, atol=1e-5)
    # it learned the order: in time order the top items are of the type after the latest item,
    # and the shuffled history moves the recommendations elsewhere
    top, top_shuffled = torch.topk(before, 5).indices.numpy(), torch.topk(after, 5).indices.numpy()
    assert (types[top] == (types[hist[-1]] + 1) % 6).mean() >= 0.6
    assert set(top.tolist()) != set(top_shuffled.tolist())
    if name == "sasrec":  # attention reads the latest item: the predicted type moves with it
        assert np.bincount(types[top], minlength=6).argmax() != np.bincount(types[top_shuffled], minlength=6).argmax()
    # the same through the evaluator's path: a user whose events are re-timed gets other scores
    same_set = model.full_sort_predict(torch.tensor([3]))[0]
    assert torch.allclose(same_set, before, atol=1e-5)


def test_a_mean_of_the_history_would_not_see_the_order(world):
    """Control for the test above: content-kNN over all of the history is order-blind."""
    model = build_model("seq_content_knn", world.train_data(), {"last_n": 50})
    hist = model.history(3)
    assert torch.allclose(model.predict_from_history(hist), model.predict_from_history(hist[::-1]), atol=1e-5)


# ---------------------------------------------------------------------- leave-one-out context
def test_test_scoring_reads_the_valid_event_as_the_latest_history(world):
    model = build_model("sasrec", world.train_data(), {})
    ev = Evaluator(world, ks=(5,))
    valid = world.split_frame("valid")
    u, v_item = int(valid["user"].iloc[0]), int(valid["item"].iloc[0])
    train_hist = model.history(u).copy()
    ev.share_context(model, "test")
    assert model.history(u).tolist() == [*train_hist.tolist(), v_item]
    ev.share_context(model, "valid")
    assert model.history(u).tolist() == train_hist.tolist()
    ev.evaluate(model, "test")  # the context follows the split scored
    assert model.history(u)[-1] == v_item


# ---------------------------------------------------------------------- cold items (acceptance 2, small)
def test_content_item_vectors_rank_items_never_seen_in_training(world):
    cold = world.cold
    ev = Evaluator(world, ks=(1, 5))
    scores = {}
    for name, params in (("sasrec", {}), ("mm_sasrec", {"item_repr": "content"}), ("seq_content_knn", {})):
        model = build_model(name, world.train_data(), params)
        if model_class(name).trainable:
            torch.manual_seed(0)
            _fit(model, world, epochs=20)
        scores[name] = slice_metrics(ev, model, "test", cold=cold)
    assert scores["mm_sasrec"]["cold:n_users"] > 20
    assert scores["mm_sasrec"]["cold:recall@5"] > scores["sasrec"]["cold:recall@5"] + 0.2
    assert scores["mm_sasrec"]["cold:recall@5"] > scores["seq_content_knn"]["cold:recall@5"] + 0.2


def test_cold_neighbours_place_new_items_by_their_warm_content_neighbours(world):
    torch.manual_seed(0)
    plain = build_model("mm_sasrec", world.train_data(), {"embedding_size": 16})
    torch.manual_seed(0)
    placed = build_model("mm_sasrec", world.train_data(), {"embedding_size": 16, "cold_neighbours": 3,
                                                          "cold_mix": 0.5})
    placed.load_state_dict(plain.state_dict())
    plain.eval(), placed.eval()
    before, after = plain.items.table(training=False)[1:], placed.items.table(training=False)[1:]
    warm = placed.items.warm
    new = torch.nonzero(~warm).ravel()
    assert len(new) and torch.equal(before[warm], after[warm])         # warm items keep their vectors
    nbr = placed.items._cold_nbr.to_dense()
    assert (nbr[:, ~warm] == 0).all() and torch.allclose(nbr[new].sum(1), torch.ones(len(new)))
    mean = nbr[new] @ before
    mean = mean / mean.norm(dim=1, keepdim=True) * (nbr[new] @ before.norm(dim=1, keepdim=True))
    assert torch.allclose(after[new], 0.5 * before[new] + 0.5 * mean, atol=1e-5)
    # training never sees the mix (new items have no training events), and 0 switches it off
    assert torch.equal(placed.items.table(training=True)[1:][new].detach(), before[new])
    placed.items.set_cold_neighbours(0)
    assert torch.equal(placed.items.table(training=False)[1:], before)
    placed.items.set_cold_neighbours(0, scale=2.0)                      # cold_scale: new items' scores x 2
    scaled = placed.items.table(training=False)[1:]
    assert torch.equal(scaled[warm], before[warm]) and torch.allclose(scaled[new], 2 * before[new])


# ---------------------------------------------------------------------- contract details
@pytest.mark.parametrize("name", SEQ_MODELS)
def test_every_sequential_model_trains_and_scores_the_catalogue(world, name):
    torch.manual_seed(0)
    model = build_model(name, world.train_data(), {"max_len": 6, "embedding_size": 16})
    cfg = TrainConfig(epochs=2, batch_size=128, checkpoint=False, progress=False, valid_metric="recall@5")
    result = Trainer(model, world.train_data(), cfg, Evaluator(world, ks=(5,)), seed=0).fit()
    assert result.best_epoch >= 1 and np.isfinite(result.history[0]["loss"])
    scores = model.full_sort_predict(torch.arange(4))
    assert scores.shape == (4, world.n_items) and torch.isfinite(scores).all()
    users, items = model.user_embeddings(), model.item_embeddings()
    assert torch.allclose(users[:4] @ items.T, scores, atol=1e-4)


def test_id_only_models_point_to_the_multimodal_variant():
    with pytest.raises(UserError, match="mm_"):
        model_class("sasrec").validate_params({"item_repr": "content"})
    with pytest.raises(UserError, match="n_heads"):
        build_model("sasrec", leave_last_out_split(cycle_world(seed=2)).train_data(),
                    {"embedding_size": 10, "n_heads": 3})


def test_predict_from_history_rejects_unknown_items(world):
    model = build_model("gru4rec", world.train_data(), {})
    with pytest.raises(UserError, match="out of range"):
        model.predict_from_history([0, world.n_items])


def test_new_items_split_removes_only_training_events_of_the_new_items():
    ds = cycle_world(seed=1, cold_share=0.0)
    plain = leave_last_out_split(ds)
    split = leave_last_out_split(ds, new_items=0.2, seed=3)
    for name in ("valid", "test"):   # every held-out event stays
        assert len(split.split_frame(name)) == len(plain.split_frame(name))
    train_items = set(split.split_frame("train")["item"])
    removed = set(plain.split_frame("train")["item"]) - train_items
    assert len(removed) == round(ds.n_items * 0.2)
    assert set(split.split_frame("test")["item"]) & removed     # some next items are new arrivals
    with pytest.raises(UserError, match="new_items"):
        leave_last_out_split(ds, new_items=1.0)
