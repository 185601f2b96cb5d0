"""Streak rules over simulated days (fixed dates, real Redis): consecutive days, same day,
missed days, freezes, DST, timezone changes, late offline activity, concurrency, restore."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from gamification.managers import restore_streak, streaks
from mookti.errors import Invalid
from storage.managers import users
from tests.gamification.conftest import act, at, events_of

DAY = "2026-06-{:02d} 12:00"


def run_days(user, days, tz="UTC"):
    """Activity at noon on each given day of June 2026; returns the last streak."""
    result = None
    for day in days:
        result = act(user, at(DAY.format(day), tz))["streak"]
    return result


def test_consecutive_days_count_and_same_day_does_not(learner):
    user = learner()
    first = act(user, at("2026-06-01 08:00"))
    assert first["counted"] and first["streak"]["current"] == 1
    assert act(user, at("2026-06-01 22:00"))["streak"]["current"] == 1
    second = act(user, at("2026-06-02 00:01"))["streak"]
    assert (second["current"], second["longest"]) == (2, 2)
    third = act(user, at("2026-06-03 23:59"))["streak"]
    assert (third["current"], third["longest"], third["activeToday"]) == (3, 3, True)


def test_missed_day_without_freeze_restarts_and_longest_stays(learner):
    user = learner()
    run_days(user, [1, 2, 3])
    after_gap = run_days(user, [5])
    assert (after_gap["current"], after_gap["longest"], after_gap["freezes"]) == (1, 3, 0)
    assert run_days(user, [6])["current"] == 2


def test_freezes_are_earned_every_seven_days_and_capped(learner):
    user = learner()
    assert run_days(user, range(1, 7))["freezes"] == 0
    assert run_days(user, [7])["freezes"] == 1
    assert run_days(user, range(8, 15))["freezes"] == 2
    assert run_days(user, range(15, 22))["freezes"] == 2  # at most two held


def test_a_missed_day_consumes_a_freeze(learner):
    user = learner()
    run_days(user, range(1, 8))  # 7 days: one freeze
    bridged = run_days(user, [9])  # June 8 missed
    assert (bridged["current"], bridged["freezes"], bridged["longest"]) == (8, 0, 8)
    broken = run_days(user, [11])  # June 10 missed, no freeze left
    assert (broken["current"], broken["longest"]) == (1, 8)


def test_two_missed_days_need_two_freezes(learner):
    two = learner()
    run_days(two, range(1, 15))  # 14 days: two freezes
    bridged = run_days(two, [17])  # June 15 and 16 missed
    assert (bridged["current"], bridged["freezes"]) == (15, 0)

    one = learner()
    run_days(one, range(1, 8))  # one freeze only
    broken = run_days(one, [10])  # two days missed
    assert (broken["current"], broken["freezes"], broken["longest"]) == (1, 0, 7)


def test_spring_forward_day_is_one_day(learner):
    user = learner("America/New_York")  # 2026-03-08 has 23 hours
    tz = "America/New_York"
    assert act(user, at("2026-03-07 23:30", tz))["streak"]["current"] == 1
    assert act(user, at("2026-03-08 00:10", tz))["streak"]["current"] == 2
    assert act(user, at("2026-03-08 23:50", tz))["streak"]["current"] == 2
    assert act(user, at("2026-03-09 00:05", tz))["streak"]["current"] == 3


def test_fall_back_day_is_one_day(learner):
    tz = "America/New_York"  # 2026-11-01 has 25 hours
    user = learner(tz)
    assert act(user, at("2026-10-31 12:00", tz))["streak"]["current"] == 1
    early = at("2026-11-01 00:30", tz)
    late = at("2026-11-01 23:45", tz)
    assert late - early > 24 * 3600 * 1_000_000  # more than 24 hours apart, still one day
    assert act(user, early)["streak"]["current"] == 2
    assert act(user, late)["streak"]["current"] == 2
    assert act(user, at("2026-11-02 00:15", tz))["streak"]["current"] == 3


def move(user, tz):
    return users.update(user["id"], {"timezone": tz})


def test_moving_west_does_not_double_count(learner):
    user = learner("Asia/Tokyo")
    run_days(user, [1, 2], "Asia/Tokyo")
    morning_tokyo = at("2026-06-03 08:00", "Asia/Tokyo")  # = June 2, 16:00 in Los Angeles
    assert act(user, morning_tokyo)["streak"]["current"] == 3
    user = move(user, "America/Los_Angeles")
    same_day = act(user, at("2026-06-02 20:00", "America/Los_Angeles"))["streak"]
    assert (same_day["current"], same_day["activeToday"]) == (3, True)
    assert act(user, at("2026-06-03 20:00", "America/Los_Angeles"))["streak"]["current"] == 4


def test_moving_east_does_not_double_count(learner):
    user = learner("America/Los_Angeles")
    run_days(user, [1, 2], "America/Los_Angeles")
    evening_la = at("2026-06-03 20:00", "America/Los_Angeles")  # = June 4, 12:00 in Tokyo
    assert act(user, evening_la)["streak"]["current"] == 3
    user = move(user, "Asia/Tokyo")
    assert act(user, at("2026-06-04 13:00", "Asia/Tokyo"))["streak"]["current"] == 3
    assert act(user, at("2026-06-05 09:00", "Asia/Tokyo"))["streak"]["current"] == 4


def test_a_long_flight_does_not_break_the_streak(learner):
    user = learner("Asia/Tokyo")
    assert act(user, at("2026-06-05 20:00", "Asia/Tokyo"))["streak"]["current"] == 1
    user = move(user, "America/Los_Angeles")
    # 40 hours later, but the next calendar day where the learner now is.
    assert act(user, at("2026-06-06 20:00", "America/Los_Angeles"))["streak"]["current"] == 2


def test_late_offline_activity_heals_a_gap(learner):
    user = learner()
    run_days(user, [1, 2])
    assert run_days(user, [4])["current"] == 1  # June 3 missing
    late = act(user, at("2026-06-03 18:00"), now=at("2026-06-04 19:00"))["streak"]
    assert (late["current"], late["longest"]) == (4, 4)
    again = act(user, at("2026-06-02 09:00"), now=at("2026-06-04 19:05"))["streak"]
    assert again["current"] == 4  # a day already counted
    assert run_days(user, [5])["current"] == 5


def test_late_activity_uses_the_backfill_window_and_rejects_the_future(learner):
    user = learner()
    now = at("2026-06-20 12:00")
    with pytest.raises(Invalid) as too_old:
        act(user, at("2026-06-10 12:00"), now=now)
    assert "occurredAt" in too_old.value.fields
    with pytest.raises(Invalid) as future:
        act(user, now + 3600 * 1_000_000, now=now)
    assert "occurredAt" in future.value.fields
    assert streaks.get(user, now=now)["longest"] == 0


def test_reading_tells_whether_the_streak_is_alive(learner):
    user = learner("Europe/Berlin")
    tz = "Europe/Berlin"
    run_days(user, range(1, 8), tz)  # 7 days, one freeze
    same = streaks.get(user, now=at("2026-06-07 23:00", tz))
    assert (same["alive"], same["activeToday"], same["current"]) == (True, True, 7)
    tomorrow = streaks.get(user, now=at("2026-06-08 23:59", tz))
    assert (tomorrow["alive"], tomorrow["activeToday"], tomorrow["freezesNeeded"]) == (True, False, 0)
    covered = streaks.get(user, now=at("2026-06-09 10:00", tz))
    assert (covered["alive"], covered["freezesNeeded"], covered["current"]) == (True, 1, 7)
    gone = streaks.get(user, now=at("2026-06-10 10:00", tz))
    assert (gone["alive"], gone["current"], gone["longest"]) == (False, 0, 7)


def test_concurrent_activity_counts_the_day_once(learner):
    user = learner()
    when = at("2026-06-01 12:00")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: act(user, when + i), range(16)))
    assert all(r["counted"] for r in results)
    final = streaks.get(user, now=when + 100)
    assert (final["current"], final["longest"]) == (1, 1)
    assert max(r["stats"]["xp"] for r in results) == 16 * 5


def test_a_repeated_activity_id_is_counted_once(learner):
    user = learner()
    when = at("2026-06-01 12:00")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: act(user, when, activity_id="offline-42"), range(8)))
    assert sum(r["counted"] for r in results) == 1
    assert {r["stats"]["xp"] for r in results} == {5}


def test_restore_bridges_an_outage(learner):
    user = learner("Asia/Kolkata")
    tz = "Asia/Kolkata"
    run_days(user, range(1, 6), tz)  # five days, no freeze yet
    assert run_days(user, [7], tz)["current"] == 1  # June 6 lost to an outage
    restored = restore_streak(
        user["id"], 6, at("2026-06-06 12:00", tz), restored_by="ops", reason="outage", now=at("2026-06-07 13:00", tz)
    )
    assert (restored["current"], restored["longest"], restored["alive"]) == (7, 7, True)
    assert run_days(user, [8], tz)["current"] == 8
    restores = [data for kind, data in events_of(user["id"]) if kind == "streak.restored"]
    assert restores == [
        {"current": 6, "lastActivity": "2026-06-06T06:30:00.000Z", "restoredBy": "ops", "reason": "outage"}
    ]


def test_restore_rejects_bad_values(learner):
    user = learner()
    with pytest.raises(Invalid):
        restore_streak(user["id"], 0)
    with pytest.raises(Invalid):
        restore_streak(user["id"], 3, at("2099-01-01 00:00"))


def test_a_long_streak_survives_folding_old_days_into_the_base(learner):
    from datetime import date, timedelta

    from gamification import keys
    from gamification.managers.engine import streak_days_kept
    from mookti.redis import get_redis

    user = learner()
    start = date(2026, 1, 1)
    for offset in range(75):
        result = act(user, at(f"{start + timedelta(days=offset)} 12:00"))["streak"]
    assert (result["current"], result["longest"], result["freezes"]) == (75, 75, 2)
    assert get_redis().zcard(keys.streak_days(user["id"])) == streak_days_kept()
    late = act(user, at("2026-03-14 09:00"), now=at("2026-03-17 12:00"))["streak"]  # a day already counted
    assert late["current"] == 75
    # three days missed with two freezes: the streak restarts, longest stays
    broken = act(user, at("2026-03-20 12:00"))["streak"]
    assert (broken["current"], broken["longest"], broken["freezes"]) == (1, 75, 0)
    # the first missed day arrives late (offline): two days left, bridged by the two freezes
    healed = act(user, at("2026-03-17 20:00"), now=at("2026-03-20 13:00"))["streak"]
    assert (healed["current"], healed["longest"]) == (77, 77)
