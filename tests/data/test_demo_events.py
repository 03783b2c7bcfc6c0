"""The demo's opt-in event log: impressions, clicks and purchases from known propensities."""
from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.demo import make_demo_dataset
from fusionrec.data.demo_events import EventSettings, demo_event_truth
from fusionrec.errors import UserError
from fusionrec.evaluate.metrics import auc


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_events")
    plain = make_demo_dataset(n_users=80, n_items=60, root=root, image_size=32)
    events = make_demo_dataset(n_users=80, n_items=60, root=root, image_size=32, events=True)
    return plain, events


def test_events_are_opt_in_and_keep_the_catalogue(shop):
    plain, events = shop
    assert (plain.interactions["label"] == 1).all()          # the shop's own interactions by default
    assert list(events.items["item_id"]) == list(plain.items["item_id"])
    assert events.n_users == plain.n_users and events.has_split
    labels = events.interactions["label"].to_numpy()
    assert set(np.unique(labels)) == {0.0, 1.0, 2.0}
    # every impression of a user is a distinct item, and new arrivals stay out of training
    assert not events.interactions.duplicated(["user", "item"]).any()
    new = events.items["trait_new_arrival"].to_numpy()[events.split_frame("train")["item"].to_numpy()]
    assert not new.any()


def test_the_truth_is_known_and_drives_the_events(shop):
    _, events = shop
    truth = demo_event_truth(events, seed=0)
    merged = events.interactions.merge(truth, on=["user", "item"], suffixes=("", "_truth"))
    assert len(merged) == len(events.interactions)
    assert (merged["label"] == merged["label_truth"]).all()   # the same draw, deterministic
    click = merged["label"].to_numpy() >= 1
    conv = merged["label"].to_numpy() >= 2
    assert auc(click, merged["p_click"]) > 0.65
    assert auc(conv[click], merged["p_convert"][click]) > 0.65
    assert 0.05 < click.mean() < 0.6 and 0.05 < conv[click].mean() < 0.6


def test_settings_are_checked():
    assert EventSettings.from_value({"impressions_per_user": 20}).impressions_per_user == 20
    with pytest.raises(UserError, match="unknown setting"):
        EventSettings.from_value({"impressions": 20})
