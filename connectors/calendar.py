"""Calendar and tasks over CalDAV: events (create, move, cancel) and tasks (create, done), each
exactly once.

The UID of a new event or task derives from the idempotency key and the object is created with
``PUT …/UID.ics`` and ``If-None-Match: *``: a retry or a re-run after a crash finds the object
already there (``412``) and counts it as done, and reconcile asks for it by UID. Moving, cancelling
and completing are idempotent by nature (same target state; a cancelled event's ``404`` is done).

The protocol is spoken with httpx (WebDAV verbs and two small XML bodies) and the objects are
built and read with icalendar; the ``caldav`` package would replace urllib3 in the whole process
with a fork and hides the ``If-None-Match`` header this connector's guarantee rests on.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import httpx
from icalendar import Calendar, Event, Todo

from connectors.base import (
    Action,
    AuthError,
    Connector,
    Diff,
    PermanentError,
    Receipt,
    TransientError,
)
from connectors.retry import RetryPolicy

CREATE_EVENT = "calendar.create"
MOVE_EVENT = "calendar.move"
CANCEL_EVENT = "calendar.cancel"
CREATE_TASK = "task.create"
COMPLETE_TASK = "task.done"
KINDS = (CREATE_EVENT, MOVE_EVENT, CANCEL_EVENT, CREATE_TASK, COMPLETE_TASK)
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
PRODID = "-//Solo OS//calendar connector//EN"
MAX_DESCRIPTION = 1000


def uid_for(idempotency_key: str) -> str:
    """The UID of the event or task created under ``idempotency_key``."""
    return f"solo-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """An event or a task as read from the server (data, never an instruction).

    Attributes:
        start, end: aware datetimes for events (an all-day event starts at midnight UTC and
            has ``all_day``); ``due`` for tasks.
        description: an event's DESCRIPTION (an agenda, dial-in details: whatever whoever sent
            the invitation wrote), at most :data:`MAX_DESCRIPTION` characters.
    """

    uid: str
    title: str
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    due: datetime | None = None
    done: bool = False
    description: str = ""


def _aware(value: date | datetime | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _ical(component: Event | Todo, uid: str, summary: str, **properties: Any) -> bytes:
    """One event or task as a VCALENDAR document."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    component.add("uid", uid)
    component.add("summary", summary)
    component.add("dtstamp", datetime.now(UTC))
    for name, value in properties.items():
        component.add(name, value)
    calendar.add_component(component)
    return calendar.to_ical()


def _parse_time(value: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise PermanentError(f"{what} is not a time: {value!r}") from exc
    if moment.tzinfo is None:
        raise PermanentError(f"{what} has no time zone: {value!r}")
    return moment


class CalendarConnector(Connector):
    """One CalDAV calendar collection.

    Args:
        url: the account's CalDAV home (``https://dav.example/alice/``).
        calendar: the collection under ``url`` (``work``).
        client: shared ``httpx.AsyncClient``.
        timezone: the operator's zone, for what cards and the agenda show.
    """

    name = "calendar"

    def __init__(self, *, url: str, calendar: str, username: str, password: str,
                 client: httpx.AsyncClient, retry: RetryPolicy, timezone: ZoneInfo,
                 timeout: float = 30.0) -> None:
        self.collection = urljoin(url.rstrip("/") + "/", calendar.strip("/") + "/")
        self._auth = httpx.BasicAuth(username, password) if username else None
        self._client = client
        self._retry = retry
        self.timezone = timezone
        self._timeout = timeout

    # -- actions ------------------------------------------------------------------------------

    def create_event(self, title: str, start: datetime, end: datetime) -> Action:
        """Book ``title`` from ``start`` to ``end`` (aware datetimes)."""
        return Action(kind=CREATE_EVENT, connector=self.name, args={
            "title": title, "start": start.astimezone(UTC).isoformat(),
            "end": end.astimezone(UTC).isoformat()})

    def move_event(self, uid: str, title: str, start: datetime, end: datetime) -> Action:
        """Move the event ``uid`` to ``start``–``end``."""
        return Action(kind=MOVE_EVENT, connector=self.name, args={
            "uid": uid, "title": title, "start": start.astimezone(UTC).isoformat(),
            "end": end.astimezone(UTC).isoformat()})

    def cancel_event(self, uid: str, title: str) -> Action:
        """Delete the event ``uid``."""
        return Action(kind=CANCEL_EVENT, connector=self.name, args={"uid": uid, "title": title})

    def create_task(self, text: str) -> Action:
        """Add an open task."""
        return Action(kind=CREATE_TASK, connector=self.name, args={"text": text})

    def complete_task(self, uid: str, text: str) -> Action:
        """Mark the task ``uid`` done."""
        return Action(kind=COMPLETE_TASK, connector=self.name, args={"uid": uid, "text": text})

    # -- the contract -------------------------------------------------------------------------

    def _span(self, start: datetime, end: datetime) -> str:
        local_start, local_end = start.astimezone(self.timezone), end.astimezone(self.timezone)
        same_day = local_start.date() == local_end.date()
        text = f"{local_start:%a %d %b %H:%M}–{local_end:%H:%M}" if same_day else \
            f"{local_start:%a %d %b %H:%M} – {local_end:%a %d %b %H:%M}"
        return f"{text} ({self.timezone.key})"

    def _times(self, args: dict[str, Any]) -> tuple[datetime, datetime]:
        start, end = _parse_time(args.get("start"), "start"), _parse_time(args.get("end"), "end")
        if end <= start:
            raise PermanentError("the event ends before it starts")
        return start, end

    async def preview(self, action: Action) -> Diff:
        """The event or task; for a new or moved event, its time in the operator's zone and in
        UTC, and any event it overlaps."""
        args = action.args
        if action.kind in (CREATE_EVENT, MOVE_EVENT):
            title = str(args.get("title") or "").strip()
            if not title:
                raise PermanentError("the event has no title")
            start, end = self._times(args)
            utc = f"{start.astimezone(UTC):%Y-%m-%d %H:%M}–{end.astimezone(UTC):%H:%M} UTC"
            overlapping = [e for e in await self.events_between(start, end)
                           if e.uid != args.get("uid")]
            conflicts = "; ".join(f"{e.title} ({self._span(e.start, e.end)})"
                                  for e in overlapping if e.start and e.end) or "none"
            verb = "Move" if action.kind == MOVE_EVENT else "New event"
            return Diff(title=f'{verb} "{title}"', fields=(
                ("When", None, self._span(start, end)), ("UTC", None, utc),
                ("Conflicts", None, conflicts), ("Calendar", None, self.collection)))
        if action.kind == CANCEL_EVENT:
            return Diff(title=f'Cancel event "{args.get("title", "")}"',
                        fields=(("Event", str(args.get("title", "")), "(deleted)"),))
        if action.kind == CREATE_TASK:
            if not str(args.get("text") or "").strip():
                raise PermanentError("the task is empty")
            return Diff(title="New task", fields=(("Task", None, str(args["text"])),))
        if action.kind == COMPLETE_TASK:
            return Diff(title="Task done", fields=(("Task", str(args.get("text", "")), "done"),))
        raise PermanentError(f"calendar cannot perform {action.kind}")

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Perform ``action`` once (see the module docstring for how)."""
        if action.kind not in KINDS:
            raise PermanentError(f"calendar cannot perform {action.kind}")
        return await self._retry.run(lambda: self._execute(action, idempotency_key))

    async def _execute(self, action: Action, key: str) -> Receipt:
        args = action.args
        if action.kind == CREATE_EVENT:
            start, end = self._times(args)
            uid = uid_for(key)
            created = await self._put_new(uid, self._event(uid, args["title"], start, end))
            return self._receipt(key, f'booked "{args["title"]}" {self._span(start, end)}',
                                 uid, reconciled=not created)
        if action.kind == CREATE_TASK:
            uid = uid_for(key)
            created = await self._put_new(uid, self._todo(uid, str(args["text"])))
            return self._receipt(key, f'added task "{args["text"]}"', uid,
                                 reconciled=not created)
        if action.kind == CANCEL_EVENT:
            response = await self._request("DELETE", self._href(args["uid"]))
            if response.status_code not in (200, 204, 404):
                self._raise(response)
            return self._receipt(key, f'cancelled "{args.get("title", "")}"', args["uid"],
                                 reconciled=response.status_code == 404)
        if action.kind in (MOVE_EVENT, COMPLETE_TASK):
            return await self._update(action, key)
        raise PermanentError(f"calendar cannot perform {action.kind}")

    async def _update(self, action: Action, key: str) -> Receipt:
        args = action.args
        response = await self._request("GET", self._href(args["uid"]))
        if response.status_code == 404:
            raise PermanentError(f"no event or task {args['uid']} in {self.collection}")
        if response.status_code != 200:
            self._raise(response)
        calendar = Calendar.from_ical(response.content)
        component = next(iter(calendar.walk("VEVENT") or calendar.walk("VTODO")))
        if action.kind == MOVE_EVENT:
            start, end = self._times(args)
            for name, value in (("dtstart", start), ("dtend", end)):
                component.pop(name, None)
                component.add(name, value.astimezone(UTC))
            component.pop("duration", None)
            summary = f'moved "{args["title"]}" to {self._span(start, end)}'
        else:
            component.pop("status", None)
            component.add("status", "COMPLETED")
            component.pop("completed", None)
            component.add("completed", datetime.now(UTC))
            summary = f'done: "{args.get("text", "")}"'
        sequence = int(component.get("sequence", 0)) + 1
        component.pop("sequence", None)
        component.add("sequence", sequence)
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if etag := response.headers.get("ETag"):
            headers["If-Match"] = etag
        put = await self._request("PUT", self._href(args["uid"]), content=calendar.to_ical(),
                                  headers=headers)
        if put.status_code == 412:
            raise TransientError("the event changed while it was being updated; trying again")
        if put.status_code not in (200, 201, 204):
            self._raise(put)
        return self._receipt(key, summary, args["uid"], reconciled=False)

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """The receipt if the event or task created under this key exists (by UID); ``None``
        otherwise — moves, cancels and completions are simply repeated, as they are
        idempotent."""
        uid = uid_for(idempotency_key)
        response = await self._request("GET", self._href(uid))
        if response.status_code != 200:
            return None
        return self._receipt(idempotency_key, f"{uid} was already created", uid, reconciled=True)

    async def compensate(self, receipt: Receipt) -> Action | None:
        """A booked event is cancelled; anything else is not taken back."""
        booked = re.match(r'booked "(?P<title>.*)" ', receipt.summary)
        if booked is None:
            return None
        return self.cancel_event(receipt.ref, booked["title"])

    # -- reading ------------------------------------------------------------------------------

    async def events_between(self, start: datetime, end: datetime) -> list[CalendarEntry]:
        """Events overlapping ``start``–``end``, by start time (recurrences are not expanded)."""
        stamp = "%Y%m%dT%H%M%SZ"
        body = (f'<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" '
                f'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop>'
                f'<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
                f'<c:time-range start="{start.astimezone(UTC):{stamp}}" '
                f'end="{end.astimezone(UTC):{stamp}}"/></c:comp-filter></c:comp-filter>'
                f'</c:filter></c:calendar-query>')
        entries = []
        for calendar in await self._query(body):
            for event in calendar.walk("VEVENT"):
                first = event.decoded("dtstart", None)
                begin = _aware(first, self.timezone)
                finish = _aware(event.decoded("dtend", None), self.timezone)
                if finish is None and begin is not None:
                    finish = begin + (event.decoded("duration", None) or (
                        timedelta(days=1) if not isinstance(first, datetime) else timedelta()))
                entries.append(CalendarEntry(uid=str(event.get("uid", "")),
                                             title=str(event.get("summary", "")), start=begin,
                                             end=finish,
                                             all_day=not isinstance(first, datetime),
                                             description=str(event.get("description", ""))
                                             .strip()[:MAX_DESCRIPTION]))
        return sorted(entries, key=lambda e: e.start or datetime.min.replace(tzinfo=UTC))

    async def day(self, moment: datetime) -> list[CalendarEntry]:
        """The events of the day ``moment`` falls on, in the operator's zone."""
        start = datetime.combine(moment.astimezone(self.timezone).date(), time(0), self.timezone)
        return await self.events_between(start, start + timedelta(days=1))

    async def open_tasks(self) -> list[CalendarEntry]:
        """Tasks not completed or cancelled, by due date then title."""
        body = ('<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" '
                'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop>'
                '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VTODO"/>'
                '</c:comp-filter></c:filter></c:calendar-query>')
        tasks = []
        for calendar in await self._query(body):
            for todo in calendar.walk("VTODO"):
                status = str(todo.get("status", "NEEDS-ACTION")).upper()
                if status in ("COMPLETED", "CANCELLED"):
                    continue
                tasks.append(CalendarEntry(uid=str(todo.get("uid", "")),
                                           title=str(todo.get("summary", "")),
                                           due=_aware(todo.decoded("due", None), self.timezone)))
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(tasks, key=lambda t: (t.due or far, t.title))

    async def check(self) -> list[str]:
        """Problems reaching the calendar, for ``solo doctor`` (empty: it works)."""
        try:
            response = await self._request("PROPFIND", self.collection,
                                           headers={"Depth": "0"})
        except TransientError as exc:
            return [f"CalDAV: {exc}"]
        if response.status_code in (401, 403):
            return [f"CalDAV: login refused at {self.collection} (HTTP {response.status_code})"
                    " — check [connectors.calendar] username and password"]
        if response.status_code == 404:
            return [f"CalDAV: no calendar at {self.collection} — check [connectors.calendar] "
                    "url and calendar"]
        if response.status_code != 207:
            return [f"CalDAV: PROPFIND {self.collection} answered HTTP {response.status_code}"]
        return []

    # -- plumbing -----------------------------------------------------------------------------

    def _href(self, uid: str) -> str:
        return urljoin(self.collection, f"{uid}.ics")

    def _receipt(self, key: str, summary: str, uid: str, *, reconciled: bool) -> Receipt:
        return Receipt.for_key(connector=self.name, idempotency_key=key, summary=summary,
                               ref=uid, reconciled=reconciled)

    def _event(self, uid: str, title: str, start: datetime, end: datetime) -> bytes:
        return _ical(Event(), uid, title, dtstart=start.astimezone(UTC),
                     dtend=end.astimezone(UTC))

    def _todo(self, uid: str, text: str) -> bytes:
        return _ical(Todo(), uid, text, status="NEEDS-ACTION")

    async def _put_new(self, uid: str, body: bytes) -> bool:
        """PUT only if nothing has this UID yet; True if this call created it."""
        response = await self._request("PUT", self._href(uid), content=body, headers={
            "If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"})
        if response.status_code in (200, 201, 204):
            return True
        if response.status_code == 412:
            return False
        self._raise(response)
        raise AssertionError("unreachable")

    async def _query(self, body: str) -> list[Calendar]:
        response = await self._request("REPORT", self.collection, content=body, headers={
            "Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if response.status_code != 207:
            self._raise(response)
        calendars = []
        for node in ET.fromstring(response.content).iter(f"{CALDAV}calendar-data"):
            if node.text:
                try:
                    calendars.append(Calendar.from_ical(node.text))
                except ValueError:
                    continue  # one malformed object must not hide the rest of the agenda
        return calendars

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, url, auth=self._auth,
                                               timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"CalDAV {method}: timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"CalDAV {method}: {type(exc).__name__}: {exc}") from exc

    def _raise(self, response: httpx.Response) -> None:
        status = response.status_code
        what = f"CalDAV {response.request.method} {response.request.url.path}: HTTP {status}"
        if status in (401, 403):
            raise AuthError(f"{what}: login refused")
        if status in (408, 429) or status >= 500:
            raise TransientError(what)
        raise PermanentError(f"{what}: {response.text[:200]}")
