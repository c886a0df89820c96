"""A verified body to the text a chat shows: plain text, ``{"text": ...}``, or a summary.

Run only after the signature holds. Senders differ: curl and forms post text or
``{"text": "..."}``; Alertmanager and GitHub post their own JSON, summarised here in a few lines
(a chat is no place for a 20 KB event); any other JSON is shown as a fenced block, cut at
:data:`MAX_TEXT`. Bytes that are not UTF-8 and JSON that does not parse are refused (the sender
hears why and can fix it); lone surrogate escapes and NULs are replaced, as for every platform.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opencomputer.bot.text import clean_payload, clean_text

__all__ = ["MAX_TEXT", "BadContent", "content_of"]

MAX_TEXT = 8000
"""Characters of content passed on at most (the rest is replaced by a note saying how much)."""


class BadContent(ValueError):
    """The body cannot be read; the message says why (sent back to the sender)."""


def content_of(body: bytes, headers: Mapping[str, str]) -> str:
    """The text to deliver (``post``) or to hand the agent (``turn``)."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise BadContent(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadContent("empty body")
    kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
    is_json = kind == "application/json" or kind.endswith("+json")
    if is_json or text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text)  # the stdlib keeps lone surrogates (orjson refuses them)
        except json.JSONDecodeError as exc:
            if is_json:
                raise BadContent(f"body is not valid JSON ({exc.msg} at {exc.pos})") from None
        else:
            return _cut(_summary(clean_payload(value), headers))
    return _cut(clean_text(text).strip())


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… ({len(text) - MAX_TEXT} more characters not shown)"


def _summary(value: Any, headers: Mapping[str, str]) -> str:
    if isinstance(value, dict):
        for field in ("text", "message"):
            if isinstance(value.get(field), str) and value[field].strip():
                return str(value[field]).strip()
        event = headers.get("X-GitHub-Event")
        if event:
            return _github(event, value)
        if isinstance(value.get("alerts"), list) and "receiver" in value:
            return _alertmanager(value)
    shown = json.dumps(value, indent=2, ensure_ascii=False)
    fence = "```"
    while fence in shown:
        fence += "`"
    return f"{fence}json\n{shown}\n{fence}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _alertmanager(value: dict[str, Any]) -> str:
    lines = []
    for alert in value["alerts"][:20]:
        if not isinstance(alert, dict):
            continue
        labels = _dict(alert.get("labels"))
        notes = _dict(alert.get("annotations"))
        status = str(alert.get("status") or value.get("status") or "").upper()
        what = notes.get("summary") or notes.get("description") or ""
        lines.append(f"[{status}] {labels.get('alertname', 'alert')}: {what}".rstrip(": "))
    more = len(value["alerts"]) - 20
    if more > 0:
        lines.append(f"… and {more} more alerts")
    return "\n".join(lines) or f"Alertmanager: {value.get('status', 'notification')}"


def _github(event: str, value: dict[str, Any]) -> str:
    repo = value.get("repository")
    where = repo.get("full_name", "") if isinstance(repo, dict) else ""
    head = f"GitHub {event}" + (
        f" ({value['action']})" if isinstance(value.get("action"), str) else ""
    )
    head += f" in {where}" if where else ""
    subject = next(
        (
            value[k]
            for k in ("workflow_run", "check_run", "pull_request", "issue", "release", "comment")
            if isinstance(value.get(k), dict)
        ),
        None,
    )
    lines = [head]
    if subject is not None:
        title = subject.get("name") or subject.get("title") or subject.get("tag_name") or ""
        state = subject.get("conclusion") or subject.get("state") or ""
        lines.append(" — ".join(str(p) for p in (title, state) if p))
        if subject.get("html_url"):
            lines.append(str(subject["html_url"]))
    elif event == "push":
        commits = value.get("commits")
        count = len(commits) if isinstance(commits, list) else 0
        lines.append(f"{count} commit(s) to {value.get('ref', '?')}")
        if value.get("compare"):
            lines.append(str(value["compare"]))
    return "\n".join(line for line in lines if line)
