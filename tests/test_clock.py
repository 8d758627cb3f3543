"""The union's calendar is Moscow's: the server's clock may run in UTC."""

from datetime import date, datetime, timezone

from unioncard import clock


def test_today_is_moscows_date_not_the_servers():
    # 20:59 UTC is 23:59 in Moscow; 21:00 UTC is already tomorrow there.
    assert clock.today(datetime(2026, 12, 4, 20, 59)) == date(2026, 12, 4)
    assert clock.today(datetime(2026, 12, 4, 21, 0)) == date(2026, 12, 5)
    assert clock.today(datetime(2026, 12, 4, 23, 40, tzinfo=timezone.utc)) == date(2026, 12, 5)
    assert clock.today(datetime(2026, 12, 5, 0, 10, tzinfo=timezone.utc)) == date(2026, 12, 5)
    assert clock.today() == clock.today(clock.now())
