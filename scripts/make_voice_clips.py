"""Generate the voice test clips: espeak-ng speech encoded to OGG/Opus with PyAV, like a
Telegram voice note. Run once (needs the Debian package espeak-ng); the clips and their
transcripts are committed under tests/data/voice/.

Two sets. ``tests/data/voice/clip*.ogg``: 22 phrases in one voice at one speed (the first
set; its decoding settings were chosen on it). ``tests/data/voice/varied/``: 64 other phrases,
each in one of ten espeak-ng voices (five accents, male, female and Klatt variants) at one of
four speeds, split by *voice and phrase*: the ``tune`` clips (four voices, 24 phrases) are the
only ones decoding choices may be made on; the ``held-out`` clips (six other voices, 40 other
phrases) are what figures are reported on (``python -m bench.voice``).

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


# People and companies an operator would name (Ines, Berger, Kovac …) are in the phrases on
# purpose: a name the decoder has never heard is what context (hotwords) is for.
VARIED = [
    # tune: 24 phrases
    "remind me tomorrow at nine to call Dana",
    "note that Berger wants two hundred prints",
    "what do I know about Greenleaf",
    "send the billing hook that Acme paid in full",
    "remember that Ines is the new buyer at Berger",
    "what is on my calendar today",
    "email Omar that the contract is signed",
    "reply to twelve that Friday works",
    "add a task to renew the domain",
    "show me the pending approvals",
    "how much did the models cost this week",
    "remind me in forty five minutes to stretch",
    "note the Copper Kettle menu needs new photos",
    "book a call with Mara on Tuesday at three",
    "what did Petra say about the tax forms",
    "forget fact seven",
    "run the friday update playbook",
    "any new mail from Helix",
    "remind me at two thirty to leave for the shoot",
    "remember that the gate code is four four seven one",
    "give me the summary of today",
    "tell the crm that Kovac signed the offer",
    "what is waiting for my decision",
    "cancel the dentist appointment on Thursday",
    # held out: 40 phrases
    "remind me on Monday at ten to pay Ines",
    "note that Greenleaf moved to a new office",
    "what is Dana Kovac's phone number",
    "send slack studio a message that the prints are ready",
    "remember that Berger pays within fourteen days",
    "what meetings do I have tomorrow",
    "email Ruth that the invoice is attached",
    "reply to message seven saying thanks",
    "put buy new ink on my to do list",
    "is anything waiting for my approval",
    "what is left of my budget this month",
    "remind me in two hours to check the oven",
    "note the Helix kickoff went really well",
    "schedule lunch with Luis on Wednesday at one",
    "what did Omar want from Greenleaf",
    "delete the fact about the old phone number",
    "pause the monthly cleanup playbook",
    "did Ines answer my email",
    "remind me tonight at eight to call my mother",
    "remember that the studio rent is nine hundred euros",
    "catch me up on what happened today",
    "post to the billing hook that invoice forty two is paid",
    "what did you send to the crm yesterday",
    "move the Acme call to Friday at four",
    "what can you do for me",
    "are all the connectors working",
    "note that Mara suggested a pop up stall",
    "remind me on the first of December to file taxes",
    "what do I have on file about Copper Kettle",
    "tell Berger by email that the samples are late",
    "add a task to send the quote to Helix",
    "remind me at half past five to close the shop",
    "remember that Luis only takes cash",
    "show me my plans",
    "undo the last action",
    "how is the system doing",
    "note the van needs new tyres before winter",
    "what time is the Berger visit on Thursday",
    "email Petra about the receipts from March",
    "remind me next Friday at eleven to chase Kovac",
]
NAMED = ("named.ogg", "remind me tomorrow to call Ines Kovac", "en-us", 150)
"""A note naming a person the operator's memory knows (tests/unit/test_voice.py): without
context Whisper base hears "in these car vac"."""
TUNE_VOICES = ["en-us+m1", "en-gb+f1", "en-gb-x-rp+m3", "en-029+f3"]
HELD_OUT_VOICES = ["en-us+f2", "en-gb-scotland+m2", "en-gb-x-gbclan+f4", "en-gb-x-gbcwmd+m4",
                   "en-us+klatt", "en-gb+m7"]
SPEEDS = [130, 150, 170, 190]


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


def speak(phrase: str, voice: str = "en", speed: int = 150) -> bytes:
    """espeak-ng's speech of ``phrase`` as OGG/Opus."""
    return to_ogg(subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(speed),
                                  phrase], check=True, capture_output=True).stdout)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = {}
    for number, phrase in enumerate(PHRASES, 1):
        name = f"clip{number:02d}.ogg"
        (OUT / name).write_bytes(speak(phrase))
        index[name] = phrase
    (OUT / "transcripts.json").write_text(json.dumps(index, indent=1) + "\n")
    varied, clips = OUT / "varied", {}
    varied.mkdir(exist_ok=True)
    for number, phrase in enumerate(VARIED, 1):
        split, voices = ("tune", TUNE_VOICES) if number <= 24 else ("held-out", HELD_OUT_VOICES)
        voice, speed = voices[number % len(voices)], SPEEDS[(number // len(voices)) % 4]
        name = f"v{number:02d}.ogg"
        (varied / name).write_bytes(speak(phrase, voice, speed))
        clips[name] = {"text": phrase, "voice": voice, "speed": speed, "split": split}
    (varied / "clips.json").write_text(json.dumps(clips, indent=1) + "\n")
    name, phrase, voice, speed = NAMED
    (OUT / name).write_bytes(speak(phrase, voice, speed))
    print(f"wrote {len(index)} + {len(clips)} + 1 clips to {OUT}")


if __name__ == "__main__":
    main()
