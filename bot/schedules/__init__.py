"""Schedules: reminders and recurring tasks, stored in the database, fired in the user's zone."""

from bot.schedules.spec import Cron, ScheduleError, next_run, parse_repeat, parse_when

__all__ = ["Cron", "ScheduleError", "next_run", "parse_repeat", "parse_when"]
