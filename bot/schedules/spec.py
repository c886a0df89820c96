"""When a schedule fires: one-off ISO times and cron specs, in the user's time zone.

The model turns "tomorrow at 9" into an ISO local time and "every Monday at 9" into a cron
spec (``0 9 * * 1``) or an RRULE (``FREQ=WEEKLY;BYDAY=MO;BYHOUR=9``), plus an IANA zone; this
module validates them and computes the next run as a UTC timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Cron", "ScheduleError", "next_run", "parse_repeat", "parse_when", "zone"]


class ScheduleError(ValueError):
    """A time, zone or repeat spec that cannot be used (the message is for the model/user)."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``."""
    try:
        return ZoneInfo(name.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Paris"
        ) from exc


def parse_when(when: str, tz: str) -> float:
    """UTC timestamp of an ISO date-time; a time without offset is local to ``tz``."""
    try:
        moment = datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"cannot read {when!r}; give ISO 8601 like 2026-11-22T09:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz))
    return moment.timestamp()


_DAYS = {"SU": 0, "MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(body)
            if step_text:
                end = high
        if step < 1 or start < low or end > high + (1 if high == 6 else 0) or start > end:
            raise ValueError(part)
        values.update(v % 7 if high == 6 else v for v in range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron spec: minute hour day-of-month month day-of-week (0 or 7 = Sunday)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, spec: str) -> Cron:
        """Read ``spec``; raise :class:`ScheduleError` when it is not valid cron."""
        parts = spec.split()
        if len(parts) != 5:
            raise ScheduleError(f"cron needs 5 fields (minute hour day month weekday): {spec!r}")
        try:
            fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
        except ValueError as exc:
            raise ScheduleError(f"bad cron field {exc} in {spec!r}") from exc
        minutes, hours, days, months, weekdays = fields
        return cls(
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day=parts[2] == "*",
            any_weekday=parts[4] == "*",
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:  # cron: both restricted means either may match
            return dom and dow
        return dom or dow

    def next_after(self, after: float, tz: str) -> float:
        """The first matching local time strictly after the UTC timestamp ``after``."""
        info = zone(tz)
        start = datetime.fromtimestamp(after, info)
        day = start.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = day.replace(hour=hour, minute=minute).replace(tzinfo=info)
                        if moment.timestamp() > after:
                            return moment.timestamp()
            day += timedelta(days=1)
        raise ScheduleError("this repeat spec never fires")


def _rrule_to_cron(rule: str) -> str:
    parts = dict(
        p.split("=", 1) for p in rule.upper().removeprefix("RRULE:").split(";") if "=" in p
    )
    freq = parts.get("FREQ", "")
    if parts.get("INTERVAL", "1") != "1":
        raise ScheduleError("RRULE INTERVAL other than 1 is not supported; use cron steps")
    minute = parts.get("BYMINUTE", "0")
    hour = parts.get("BYHOUR", "*" if freq == "HOURLY" else "9")
    dom = parts.get("BYMONTHDAY", "*")
    month = parts.get("BYMONTH", "*")
    days = parts.get("BYDAY", "")
    try:
        dow = ",".join(str(_DAYS[d[-2:]]) for d in days.split(",")) if days else "*"
    except KeyError as exc:
        raise ScheduleError(f"bad BYDAY in {rule!r}") from exc
    if freq == "MONTHLY" and dom == "*" and not days:
        dom = "1"
    if freq not in {"HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}:
        raise ScheduleError(f"unsupported RRULE FREQ in {rule!r}")
    if freq == "YEARLY" and month == "*":
        month = "1"
    return f"{minute} {hour} {dom} {month} {dow}"


def parse_repeat(repeat: str) -> str:
    """Normalise a repeat spec (cron or RRULE) to cron text; raise when invalid."""
    text = repeat.strip()
    if "FREQ=" in text.upper():
        text = _rrule_to_cron(text)
    Cron.parse(text)
    return text


def next_run(repeat: str, tz: str, after: float) -> float:
    """When a repeating schedule fires next after ``after``."""
    return Cron.parse(repeat).next_after(after, tz)
