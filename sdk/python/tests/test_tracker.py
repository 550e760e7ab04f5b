from stepwise_worker.tracker import Tracker


def test_mark_moves_only_over_finished_prefix() -> None:
    t = Tracker()
    t.assign([0])
    es = [t.add(0, o) for o in (10, 11, 12)]
    assert all(e is not None and t.start(e) for e in es)
    assert t.finish(es[1]) is None  # 10 still running
    assert t.finish(es[0]) == 12  # 10 and 11 done
    assert t.running() == 1
    assert t.finish(es[2]) == 13
    assert t.running() == 0


def test_refetched_offsets_are_ignored() -> None:
    t = Tracker()
    t.assign([0])
    assert t.add(0, 5) is not None
    assert t.add(0, 5) is None
    assert t.add(0, 4) is None
    assert t.add(0, 6) is not None


def test_untracked_and_closing_partitions() -> None:
    t = Tracker()
    t.assign([0])
    assert t.add(1, 0) is None
    e = t.add(0, 0)
    waiting = t.add(0, 1)
    assert e is not None and waiting is not None and t.start(e)
    t.close([0])
    assert not t.start(waiting)  # revoked partitions start nothing more
    assert t.add(0, 2) is None
    assert t.running([0]) == 1
    assert t.finish(e) == 1  # still owned while the revocation waits
    t.drop([0])
    assert t.running() == 0


def test_finish_after_drop_gives_no_mark() -> None:
    t = Tracker()
    t.assign([3])
    e = t.add(3, 7)
    assert e is not None and t.start(e)
    t.drop([3])
    assert t.finish(e) is None
    t.assign([3])  # back again: tracked afresh
    assert t.add(3, 7) is not None
