"""Schedules: reminders and recurring tasks, stored in the database, fired in the user's zone."""

from opencomputer.bot.schedules.spec import (
    ScheduleError,
    first_run,
    next_run,
    parse_repeat,
    parse_when,
)

__all__ = ["ScheduleError", "first_run", "next_run", "parse_repeat", "parse_when"]
