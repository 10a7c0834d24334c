"""Playbooks in chat: ``/playbooks``, ``/playbook NAME``, ``/run NAME``, ``/pause NAME``,
``/resume NAME``.

A sentence that starts with a schedule ("every friday at 16:00 draft …") defines a playbook: the
file it would be is proposed as a card (``graph/playbook_chat.py``), saved only when approved.
Plain words ("pause the friday update") find the command and the playbook by name.

``/run`` puts a job due now (the jobs loop runs it like a scheduled occurrence, with its own
ledger entry); ``/pause`` and ``/resume`` are kept in the database, so they survive restarts and
edits of the file.
"""

from __future__ import annotations

from dataclasses import asdict

from connectors.playbook_files import PlaybookFilesConnector
from graph.events import PLAYBOOK, Inbound
from graph.playbook_chat import DEFINES, command_in, define_from_text, playbook_named
from graph.playbooks import JOB_PREFIX, Playbook, load_playbooks, run_outcome, schedule
from graph.state import DirectorDeps, Planned, PlanState, say
from graph.timefmt import when_text
from graph.understanding import Intent
from memory.models import utcnow

FILES = "playbooks"
"""The connector that saves playbook files."""
USAGE = ("Playbooks: /playbooks lists them; /playbook NAME shows one; /run NAME runs it now; "
         "/pause NAME and /resume NAME stop and restart its schedule.")


async def answer_playbooks(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """What the playbook commands say and do."""
    if deps.playbooks_dir is None:
        return {"replies": [say("Playbooks are not set up here (no data directory).")]}
    playbooks, errors = load_playbooks(deps.playbooks_dir)
    by_name = {p.name: p for p in playbooks}
    command = intent.slots.get("command")
    inbound = Inbound.from_dict(state["inbound"])
    said = inbound.text
    if command == "report" and (inbound.attachment or {}).get("kind") == PLAYBOOK:
        # a run with no action step: its drafted text is the result (graph/nodes/understand.py)
        return {"replies": [say(f"▶ {intent.slots['id']}: {intent.slots['text']}")]}
    if command is None and DEFINES.match(said):
        return _define(said, deps)
    if command is None:  # plain words: which command, which playbook
        words = str(intent.slots.get("text") or intent.slots.get("id") or "")
        named = playbook_named(words, list(by_name)) if words else None
        command = command_in(said) if words else "playbooks"
        intent = Intent(intent.name, {"command": command, "id": named or words})
    if command == "playbooks":
        return {"replies": [say(await _list(deps, playbooks, errors))]}
    name = str(intent.slots.get("id", "")).strip().lower()
    playbook = by_name.get(name) or by_name.get(playbook_named(name, list(by_name)) or "")
    if playbook is None:
        known = ", ".join(sorted(by_name)) or f"none yet: add a file to {deps.playbooks_dir}"
        broken = [e for e in errors if e.startswith(f"{name}.toml:")]
        return {"replies": [say(broken[0] if broken else
                                f"No playbook {name!r}. Known: {known}. {USAGE}")]}
    now = utcnow()
    store = deps.storage.playbooks
    if command == "run":
        await deps.storage.jobs.put(id=f"run:{state['plan_id']}", kind=PLAYBOOK, due_at=now,
                                    payload={"name": name, "manual": True})
        return {"replies": [say(f"Running {name} now; /playbook {name} shows how it went.")]}
    if command == "pause":
        await store.set_paused(name, True)
        await deps.storage.jobs.cancel(f"{JOB_PREFIX}{name}")
        return {"replies": [say(f"Paused {name}: it does not run on its schedule until "
                                f"/resume {name} (/run {name} still runs it once).")]}
    if command == "resume":
        await store.set_paused(name, False)
        due = await schedule(deps.storage, playbook, deps.timezone, now) \
            if playbook.spec.enabled else None
        after = f"; next run {when_text(due, deps.timezone, weekday=True)}." if due else \
            " (it has no schedule, or enabled = false in its file: /run it)."
        return {"replies": [say(f"Resumed {name}{after}")]}
    return {"replies": [say(await _show(deps, playbook))]}


def _define(said: str, deps: DirectorDeps) -> Planned:
    """A playbook defined in a sentence: proposed as the file it would be (a card)."""
    files = deps.connectors.get(FILES)
    if not isinstance(files, PlaybookFilesConnector):
        return {"replies": [say("Playbooks cannot be saved here (no data directory).")]}
    defined = define_from_text(said, zone=deps.timezone, now=utcnow(),
                               webhooks=sorted(deps.webhooks))
    if isinstance(defined, str):
        return {"replies": [say(defined)]}
    name, text = defined
    return {"steps": [{"action": asdict(files.action(name, text))}]}


async def _list(deps: DirectorDeps, playbooks: list[Playbook], errors: list[str]) -> str:
    if not playbooks and not errors:
        return f"No playbooks yet: add a TOML file to {deps.playbooks_dir} (docs/playbooks.md)."
    paused = await deps.storage.playbooks.paused()
    jobs = {j.id: j for j in await deps.storage.jobs.scheduled(PLAYBOOK)}
    lines = ["Playbooks:"]
    for playbook in playbooks:
        trigger = playbook.spec.trigger
        when = trigger.schedule or (f"cron {trigger.cron}" if trigger.cron else "/run only")
        job = jobs.get(f"{JOB_PREFIX}{playbook.name}")
        state = "paused" if playbook.name in paused else \
            "off (enabled = false)" if not playbook.spec.enabled else \
            f"next {when_text(job.due_at, deps.timezone, weekday=True)}" if job else "on"
        runs = await deps.storage.playbooks.runs(playbook.name, limit=1)
        last = f"; last: {await run_outcome(deps.storage, runs[0])}" if runs else ""
        lines.append(f"{playbook.name} · {when} · {state}{last}")
    lines += [f"⚠ not loaded: {error}" for error in errors]
    return "\n".join(lines)


async def _show(deps: DirectorDeps, playbook: Playbook) -> str:
    spec, name = playbook.spec, playbook.name
    lines = [f"Playbook {name} (version {playbook.version}): "
             f"{spec.description or 'no description'}",
             "Steps: " + " → ".join(step.kind for step in spec.steps)]
    versions = await deps.storage.playbooks.versions(name)
    lines.append("Versions: " + ", ".join(
        f"{v.version} (seen {when_text(v.seen_at, deps.timezone)})" for v in versions[:5]))
    runs = await deps.storage.playbooks.runs(name, limit=5)
    lines += [f"Run {r.id} (version {r.version}): {await run_outcome(deps.storage, r)}"
              for r in runs] or ["No runs yet."]
    return "\n".join(lines)
