"""Generate the voice test clips: espeak-ng speech encoded to OGG/Opus with PyAV, like a
Telegram voice note. Run once (needs the Debian package espeak-ng); the clips and their
transcripts are committed under tests/data/voice/.

    python scripts/make_voice_clips.py
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "voice"
PHRASES = [
    "note the client loved the new logo",
    "remind me to call the printer tomorrow at ten",
    "what do I know about the bakery",
    "send the crm hook that invoice forty two is paid",
    "remember that the studio rent is due on the third",
    "show me the pending approvals",
    "give me my daily summary",
    "how much have I spent on models this month",
    "note the meeting moved to Thursday afternoon",
    "remind me in two hours to check the oven",
    "what did I approve yesterday",
    "system status please",
    "note buy new ink for the studio printer",
    "forget the old phone number",
    "remember that the winery prefers email",
    "remind me on Friday to send the invoices",
    "find my notes about the conference",
    "note the proofs are ready for review",
    "what is waiting for my decision",
    "help me with the commands",
    "note call the accountant about taxes",
    "remind me next Monday to plan the week",
]


def to_ogg(wav: bytes) -> bytes:
    """WAV bytes as OGG/Opus, mono 48 kHz."""
    buffer = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(buffer, "w", format="ogg") as target:
        stream = target.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for frame in source.decode(audio=0):
            for out in resampler.resample(frame):
                for packet in stream.encode(out):
                    target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return buffer.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = {}
    for number, phrase in enumerate(PHRASES, 1):
        wav = subprocess.run(["espeak-ng", "--stdout", "-s", "150", phrase], check=True,
                             capture_output=True).stdout
        name = f"clip{number:02d}.ogg"
        (OUT / name).write_bytes(to_ogg(wav))
        index[name] = phrase
    (OUT / "transcripts.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(index)} clips to {OUT}")


if __name__ == "__main__":
    main()
