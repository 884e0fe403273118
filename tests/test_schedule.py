"""DeadlineSchedule and HintSchedule, pure: what a loop learns from its replies and when
it wakes."""

from __future__ import annotations

from luminora_redis.listener.schedule import DeadlineSchedule, HintSchedule
from luminora_redis.ops.scans import DueScan


def scan(now_ms: int, **next_deadlines: int) -> DueScan:
    return DueScan([], False, now_ms, {int(b[1:]): d for b, d in next_deadlines.items()})


def test_it_wakes_for_the_earliest_known_deadline_on_the_servers_clock() -> None:
    schedule = DeadlineSchedule()
    # The server clock runs 5 s ahead of this host's.
    schedule.learn(scan(10_000, b1=10_300, b2=10_100), [1, 2, 3], local_ms=5_000)
    assert len(schedule) == 2
    assert schedule.seconds_until_due(5_000) == 0.1
    assert schedule.take_due(5_050) == []
    assert schedule.take_due(5_100) == [2]
    assert schedule.seconds_until_due(5_100) == 0.2
    assert schedule.take_due(6_000) == [1]
    assert schedule.seconds_until_due(6_000) is None


def test_a_later_scan_supersedes_what_was_known() -> None:
    schedule = DeadlineSchedule()
    schedule.learn(scan(0, b1=100), [1], local_ms=0)
    schedule.learn(scan(50, b1=400), [1], local_ms=50)  # the session was touched
    assert schedule.take_due(200) == []
    assert schedule.seconds_until_due(200) == 0.2
    schedule.learn(scan(60), [1], local_ms=60)  # archived or deleted: nothing ahead
    assert schedule.seconds_until_due(60) is None and len(schedule) == 0


def test_due_buckets_leave_until_scanned_again_and_forget_clears_all() -> None:
    schedule = DeadlineSchedule()
    schedule.learn(scan(0, b1=10, b2=10, b3=99), [1, 2, 3], local_ms=0)
    assert sorted(schedule.take_due(10)) == [1, 2]
    assert schedule.take_due(10) == []
    schedule.forget()
    assert schedule.take_due(1_000) == [] and len(schedule) == 0


def test_the_sweeper_wakes_just_after_the_earliest_hint_on_the_servers_clock() -> None:
    schedule = HintSchedule()
    schedule.clock(10_000, local_ms=5_000)  # the server clock runs 5 s ahead of this host's
    assert schedule.seconds_until_due(5_000) is None
    assert schedule.pause(0.25, 5_000, 0.002) == 0.25, "nothing known: the next tick"
    schedule.note(10_300)
    schedule.note(10_100)
    schedule.note(None)
    schedule.note(10_200)  # the earliest wins
    assert schedule.earliest == 10_100
    # Due strictly after the score, as Redis expires: wake at 10_101 on the server's clock.
    assert schedule.seconds_until_due(5_000) == 0.101
    assert schedule.pause(0.25, 5_000, 0.002) == 0.101
    assert schedule.pause(0.05, 5_000, 0.002) == 0.05, "the tick comes first"
    assert schedule.take_due(5_100) is None, "not past yet: a hint at t is due at t + 1"
    assert schedule.pause(0.25, 5_100, 0.002) == 0.002, "an estimate a hair early never spins"
    assert schedule.take_due(5_101) == set(), "passed, of no bucket known"
    assert schedule.take_due(5_101) is None, "taken once"
    assert schedule.earliest == 10_200, "the later hints still wake the sweeper"
    assert schedule.take_due(5_301) == set() and schedule.earliest is None, \
        "every passed hint at once"


def test_forget_drops_the_hint_and_a_new_clock_moves_the_wake() -> None:
    schedule = HintSchedule()
    schedule.clock(1_000, local_ms=1_000)
    schedule.note(1_500)
    schedule.clock(1_100, local_ms=1_000)  # the server is found 100 ms ahead after all
    assert schedule.seconds_until_due(1_000) == 0.401
    schedule.forget()
    assert schedule.earliest is None and schedule.seconds_until_due(1_000) is None


def test_a_reply_read_late_does_not_make_the_wake_late() -> None:
    """The offset is the largest of the recent samples: a reply the event loop read 300 ms
    late (the server's clock then looks 300 ms behind) moves nothing; once the good
    sample is older than the window, the next samples count."""
    schedule = HintSchedule()
    schedule.clock(1_000, local_ms=1_000)
    schedule.clock(1_100, local_ms=1_400)  # read 300 ms late
    schedule.note(1_500)
    assert schedule.seconds_until_due(1_400) == 0.101
    later = 1_000 + HintSchedule.WINDOW_MS + 1
    schedule.clock(later - 50, local_ms=later)  # the server is 50 ms behind after all
    assert schedule.seconds_until_due(1_000) == 0.551  # 1_501 on the server is 1_551 here


def test_a_hint_noted_by_one_pass_survives_the_take_of_another() -> None:
    """Passes overlap: a take may read the hints before another pass's put-back lands,
    and reply with a later next hint; the put-back's own note must still wake the
    sweeper."""
    schedule = HintSchedule()
    schedule.clock(0, local_ms=0)
    schedule.note(100, 7)  # pass A put bucket 7's next score back
    schedule.note(400)  # pass B's take, read before A's put-back landed, knew only 400
    schedule.note(100, 9)  # another bucket at the same time: taken with it, once
    schedule.note(400, 3)
    assert schedule.seconds_until_due(0) == 0.101
    assert schedule.take_due(101) == {7, 9} and schedule.take_due(101) is None
    assert schedule.seconds_until_due(101) == 0.3
    assert schedule.take_due(401) == {3}


def test_buckets_another_take_took_wake_no_one() -> None:
    """A take removed bucket 7's hint, so the pass that took it asks that bucket: the
    wake known for bucket 7 is dropped, one for the same moment of another bucket, or
    of no bucket known, stays."""
    schedule = HintSchedule()
    schedule.clock(0, local_ms=0)
    schedule.note(100, 7)
    schedule.note(200, 7)
    schedule.note(200, 9)
    schedule.note(300)
    schedule.note(300, 7)
    schedule.taken([7])
    assert schedule.earliest == 200
    assert schedule.take_due(201) == {9}
    assert schedule.take_due(301) == set(), "the wake of no bucket stays"
    assert schedule.earliest is None
