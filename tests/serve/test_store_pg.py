"""The PostgreSQL event store: same behaviour as the SQLite one, shared by replicas."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from fusionrec.errors import UserError
from fusionrec.serve.store import StoredItem

from .postgres import pg_dsn, pg_server  # noqa: F401  (fixtures)

store_pg = pytest.importorskip("fusionrec.serve.store_pg")


def test_events_idempotent_ordered_and_shared_between_replicas(pg_dsn):  # noqa: F811
    a = store_pg.PostgresEventStore(pg_dsn)
    b = store_pg.PostgresEventStore(pg_dsn)  # a second replica on the same database
    seqs = a.add_events([("e1", "u1", "i1", "click", 1.0, 10.0), (None, "u2", "i2", "view", 0.5, 11.0)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 2
    assert a.add_events([("e1", "u1", "i1", "click", 1.0, 10.0)]) == [seqs[0]]  # a retried batch
    seen = [e.user for e in b.events(after_seq=0)]
    assert seen == ["u1", "u2"] and b.max_seq() == seqs[1] and b.count_events(seqs[0]) == 1
    assert [e.item for e in b.events(user="u2")] == ["i2"]
    a.close(), b.close()


def test_concurrent_writers_commit_in_sequence_order(pg_dsn):  # noqa: F811
    stores = [store_pg.PostgresEventStore(pg_dsn) for _ in range(3)]

    def write(store, k):
        for j in range(20):
            store.add_events([(None, f"u{k}", f"i{j}", "click", 1.0, float(j))])

    threads = [threading.Thread(target=write, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in stores[0].events()]
    assert len(seqs) == 60 and seqs == sorted(seqs)


def test_items_with_versions_and_features(pg_dsn):  # noqa: F811
    s = store_pg.PostgresEventStore(pg_dsn)
    s.upsert_items([StoredItem("n1", "red lamp", b"\x89PNG", {"price": 3.5}, {"text": np.ones(4, np.float32)})])
    (v1, it), = s.items_with_versions()
    assert it.text == "red lamp" and it.image == b"\x89PNG" and it.attributes == {"price": 3.5}
    np.testing.assert_array_equal(it.features["text"], np.ones(4))
    s.upsert_items([StoredItem("n2", None, None, {}, {})])
    assert [i.item_id for i in s.items(after_version=v1)] == ["n2"]
    s.upsert_items([StoredItem("n1", "blue lamp", None, {}, {})])  # an update moves it to the end
    assert [i.item_id for i in s.items()] == ["n2", "n1"]


def test_forget_user_leaves_only_a_salted_hash(pg_dsn):  # noqa: F811
    s = store_pg.PostgresEventStore(pg_dsn)
    s.add_events([(None, "alice", "i1", "click", 1.0, 1.0), (None, "bob", "i2", "click", 1.0, 2.0)])
    n, seq = s.forget_user("alice")
    assert n == 1 and seq == s.max_seq() + 1
    assert [e.user for e in s.events()] == ["bob"]
    assert list(s.forgotten_users()) == [s.user_hash("alice")] and s.forget_generation() == 1
    s.forget_user("bob")
    assert s.forget_generation() == 2
    # the salt is shared: another replica hashes the same way
    assert store_pg.PostgresEventStore(pg_dsn).user_hash("alice") == s.user_hash("alice")


def test_unreachable_server_is_a_user_error():
    pytest.importorskip("psycopg")
    with pytest.raises(UserError, match="cannot connect to PostgreSQL"):
        store_pg.PostgresEventStore("postgresql://nobody@127.0.0.1:1/none")


def test_max_item_version_is_the_newest_write(pg_dsn):  # noqa: F811
    s = store_pg.PostgresEventStore(pg_dsn)
    assert s.max_item_version() == 0
    s.upsert_items([StoredItem("a", None, None, {}, {}), StoredItem("b", None, None, {}, {})])
    assert s.max_item_version() == max(v for v, _ in s.items_with_versions())
