"""The model path against a real small model on a real OpenAI-compatible server (llama-cpp-
python serving Qwen2.5-Coder 1.5B Instruct), as a new user would configure it: ``[llm] model =
"openai:…"`` and ``base_url``. The scripted fake (``tests/fakes/openai.py``) keeps the fault
cases; this checks what only a real server shows: which structured-output method it takes, that
its answers are read, and that its times land on the operator's calendar, not in 2023."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.processes import solo

BERLIN = ZoneInfo("Europe/Berlin")
MESSAGES = {
    "remind me tomorrow at 9 to call Alice": "remind",
    "note that the printer on the second floor is broken": "note",
    "what do I know about Acme?": "recall",
    "send the crm hook that invoice 42 is paid": "send",
}


async def test_solo_understand_reads_a_real_local_model(tmp_path: Path, local_model: str) -> None:
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      '[operator]\ntimezone = "Europe/Berlin"\n'
                      '[connectors.webhooks.crm]\nurl = "http://127.0.0.1:9/hook"\n'
                      f'[llm]\nmodel = "openai:qwen"\nbase_url = "{local_model}"\n'
                      'api_key = "local"\ntimeout_seconds = 300\n')
    before = datetime.now(BERLIN)
    result = await solo("--config", str(config), "understand", "-",
                        stdin="\n".join(MESSAGES) + "\n", cwd=tmp_path,
                        timeout=900)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == len(MESSAGES)
    # The server refuses a json_schema response format (with HTTP 500); auto finds the next.
    assert "refused structured output 'json_schema'" in result.stderr
    assert not [a for a in answers if "error" in a], answers  # every answer was read
    right = sum(a["intent"] == want for a, want in zip(answers, MESSAGES.values(), strict=True))
    assert right >= 3, answers
    remind = answers[0]
    assert remind["intent"] == "remind", remind
    when = datetime.fromisoformat(remind["slots"]["when"])
    tomorrow = (before + timedelta(days=1)).date()
    assert (when.astimezone(BERLIN).date(), when.astimezone(BERLIN).hour) == (tomorrow, 9)
