"""When a schedule fires: one-off ISO times, cron specs and RRULEs, in the user's time zone.

The model turns "tomorrow at 9" into an ISO local time and "every Monday at 9" into a cron
spec (``0 9 * * MON``) or an RRULE (``FREQ=WEEKLY;BYDAY=MO;BYHOUR=9``), plus an IANA zone; this
module validates them and computes the next run as a UTC timestamp.

Both languages are read by maintained libraries rather than by hand: cron by ``cronsim``
(five fields only, names, ``L``, ``1#1`` nth weekday, time-zone aware across daylight-saving
changes, no dependencies) and RRULE by ``python-dateutil``'s ``rrule`` (``COUNT``, ``UNTIL``,
``INTERVAL``, ``BYDAY=1MO`` ordinals...). A cron spec needs no state. An RRULE's ``COUNT`` and
``INTERVAL`` depend on where the series starts, so the stored spec carries its own
``DTSTART`` (local wall time in the schedule's zone): the next run after any moment is
recomputed from that start, which survives restarts without a counter column.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from dateutil.rrule import rrule, rrulestr

__all__ = [
    "ScheduleError",
    "catch_up",
    "describe_repeat",
    "first_run",
    "next_run",
    "parse_repeat",
    "parse_when",
    "zone",
]

# crontab(5)'s nicknames; cronsim reads the five-field form only (@reboot has no meaning here)
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY")
_STAMP = "%Y%m%dT%H%M%S"
_MAX_LEN = 255  # the schedules.repeat column


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


def _is_rrule(text: str) -> bool:
    return "FREQ=" in text.upper()


# --- cron ---------------------------------------------------------------------------------
def _cron(spec: str) -> str:
    """``spec`` as five cron fields (nicknames expanded); raise when cronsim refuses it."""
    text = " ".join(spec.split())
    text = _ALIASES.get(text.lower(), text)
    if len(text.split()) != 5 or text.startswith("@"):
        raise ScheduleError(
            f"bad cron spec {spec!r}: give 5 fields (minute hour day month weekday) like "
            "'0 9 * * MON', or @hourly/@daily/@weekly/@monthly/@yearly"
        )
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError(f"bad cron spec {spec!r}: {str(exc).lower()}") from exc
    return text


def _cron_after(spec: str, info: ZoneInfo, after: float) -> float | None:
    try:
        moment = next(CronSim(_cron(spec), datetime.fromtimestamp(after, info)))
    except StopIteration:  # e.g. "0 0 30 2 *": cronsim gives up rather than loop forever
        return None
    return moment.timestamp()


# --- RRULE --------------------------------------------------------------------------------
def _local(timestamp: float, info: ZoneInfo) -> datetime:
    """Naive wall-clock time in ``info``: how RRULEs are expanded, so 9:00 stays 9:00."""
    return datetime.fromtimestamp(timestamp, info).replace(tzinfo=None)


def _until(value: str, info: ZoneInfo) -> str:
    """UNTIL as local wall time: UTC (``Z``) converted, a bare date taken as its whole day."""
    try:
        if value.endswith("Z"):
            moment = datetime.strptime(value[:-1], _STAMP).replace(tzinfo=ZoneInfo("UTC"))
            return _local(moment.timestamp(), info).strftime(_STAMP)
        if "T" in value:
            return datetime.strptime(value, _STAMP).strftime(_STAMP)
        day = datetime.strptime(value, "%Y%m%d")
    except ValueError as exc:
        raise ScheduleError(
            f"bad RRULE UNTIL {value!r}: give a date like 20261231 or 20261231T090000Z"
        ) from exc
    return (day + timedelta(days=1, seconds=-1)).strftime(_STAMP)


def _rrule(rule: str, info: ZoneInfo, start: float, *, anchored: bool) -> str:
    """The RRULE normalised, with defaults made explicit and its ``DTSTART`` prepended.

    Without an explicit start (``anchored`` false) the series starts now and, as before,
    a daily-or-slower rule fires at 09:00 unless it names an hour, an hourly one on the
    hour; a rule naming an hour but no minute fires on the hour (RFC 5545 would take the
    minute from the start, which surprises people).
    """
    text = rule.strip()
    if "\n" in text or "DTSTART" in text.upper():
        raise ScheduleError("give the start of a repeat as `when`, not as an RRULE DTSTART")
    parts: dict[str, str] = {}
    for item in text.upper().removeprefix("RRULE:").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ScheduleError(f"bad RRULE {rule!r}: {item!r} is not KEY=VALUE")
        parts[key.strip()] = value.strip()
    freq = parts.get("FREQ", "")
    if freq not in _FREQS:
        raise ScheduleError(f"bad RRULE {rule!r}: FREQ must be one of {', '.join(_FREQS)}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ScheduleError(f"bad RRULE {rule!r}: give COUNT or UNTIL, not both")
    if "UNTIL" in parts:
        parts["UNTIL"] = _until(parts["UNTIL"], info)
    slow = _FREQS.index(freq) <= _FREQS.index("HOURLY")
    if not anchored and slow and freq != "HOURLY" and "BYHOUR" not in parts:
        parts["BYHOUR"] = "9"
    if slow and "BYMINUTE" not in parts and (not anchored or "BYHOUR" in parts):
        parts["BYMINUTE"] = "0"
    parts.setdefault("BYSECOND", "0")
    order = ["FREQ"] + [k for k in parts if k != "FREQ"]
    body = ";".join(f"{k}={parts[k]}" for k in order)
    dtstart = _local(start, info).replace(second=0, microsecond=0)
    spec = f"DTSTART:{dtstart.strftime(_STAMP)}\nRRULE:{body}"
    _rule(spec, rule)  # dateutil's own validation
    if len(spec) > _MAX_LEN:
        raise ScheduleError(f"RRULE {rule!r} is too long ({len(spec)} characters)")
    return spec


def _rule(spec: str, shown: str | None = None) -> rrule:
    try:
        parsed = rrulestr(spec)
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"bad RRULE {shown or spec!r}: {exc}") from exc
    assert isinstance(parsed, rrule)  # one RRULE line, no RDATE/EXDATE: never a set
    return parsed


def _rrule_after(spec: str, info: ZoneInfo, after: float, *, inclusive: bool) -> float | None:
    rule = _rule(spec)
    moment: datetime | None = rule.after(_local(after, info), inc=inclusive)
    while moment is not None:
        stamp: float = moment.replace(tzinfo=info).timestamp()
        # a wall time repeated when clocks go back maps below ``after``: look further on
        if stamp > after or (inclusive and stamp == after):
            return stamp
        moment = rule.after(moment)
    return None


# --- public API ---------------------------------------------------------------------------
def parse_repeat(
    repeat: str, tz: str = "UTC", *, start: float | None = None, now: float | None = None
) -> str:
    """Normalise a repeat spec (cron or RRULE) to the text stored; raise when invalid.

    ``start`` is when the series begins (the user's ``when``); without it the series begins
    at ``now`` (default: the current time). Only an RRULE depends on it.
    """
    text = repeat.strip()
    if not text:
        raise ScheduleError("empty repeat spec; give cron like '0 9 * * MON' or an RRULE")
    if _is_rrule(text):
        anchored = start is not None
        begin = start if start is not None else (now if now is not None else time.time())
        return _rrule(text, zone(tz), begin, anchored=anchored)
    return _cron(text)


def next_run(repeat: str, tz: str, after: float) -> float | None:
    """When a repeating schedule fires next, strictly after ``after``; None when it is over."""
    info = zone(tz)
    if _is_rrule(repeat):
        return _rrule_after(repeat, info, after, inclusive=False)
    return _cron_after(repeat, info, after)


def first_run(repeat: str, tz: str, start: float) -> float | None:
    """The first run at or after ``start`` (a run due exactly then counts)."""
    info = zone(tz)
    if _is_rrule(repeat):
        return _rrule_after(repeat, info, start, inclusive=True)
    return _cron_after(repeat, info, start - 1.0)


def catch_up(repeat: str, tz: str, occurrence: float, now: float) -> tuple[float | None, int]:
    """After firing ``occurrence`` at ``now``: the next future run and how many were missed.

    Runs between the two were lost while the server was down; they are counted (the user is
    told) but not fired. One pass over the series, however many were missed.
    """
    info = zone(tz)
    skipped = 0
    if _is_rrule(repeat):
        for moment in _rule(repeat).xafter(_local(occurrence, info)):
            stamp = moment.replace(tzinfo=info).timestamp()
            if stamp <= occurrence:
                continue
            if stamp > now:
                return stamp, skipped
            skipped += 1
        return None, skipped
    for moment in CronSim(_cron(repeat), datetime.fromtimestamp(occurrence, info)):
        stamp = moment.timestamp()
        if stamp > now:
            return stamp, skipped
        skipped += 1
    return None, skipped


def describe_repeat(repeat: str) -> str:
    """One line for people: the cron text, or the RRULE with the day it started."""
    if not _is_rrule(repeat):
        return repeat
    head, _, body = repeat.partition("\n")
    try:
        since = datetime.strptime(head.removeprefix("DTSTART:"), _STAMP)
    except ValueError:
        return " ".join(repeat.split())
    rule = body.removeprefix("RRULE:").replace(";BYSECOND=0", "")  # our default, not theirs
    return f"{rule} from {since:%Y-%m-%d %H:%M}"
