"""Synthetic speech with espeak-ng: sample audio for demos and tests, and extra training
voices. espeak-ng is a Debian package (``apt-get install espeak-ng``); nothing is downloaded.
"""
from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

# espeak-ng accents and voice variants that sound like a person (robot and whisper variants left out).
LANGUAGES = ("en-us", "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
VARIANTS = (
    "male1", "male2", "male3", "male4", "male5", "male6", "male7", "male8",
    "female1", "female2", "female3", "female4", "female5",
    "Alex", "Andy", "Annie", "Belinda", "Benjamin", "Caleb", "David", "Ed", "Edward",
    "John", "Linda", "Max", "Michael", "Mike", "Paul", "Rob", "Robert", "Steph", "travis", "victor", "Zac",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def to_ssml(text: str) -> str:
    """Mark runs of single-letter words as spelled characters, so 'a' is said as the letter.

    >>> to_ssml("rubout g m e f three")
    '<speak>rubout <say-as interpret-as="characters">gmef</say-as> three</speak>'
    """
    out, letters = [], []
    for word in text.split():
        if len(word) == 1 and word.isalpha():
            letters.append(word)
            continue
        if letters:
            out.append(f'<say-as interpret-as="characters">{"".join(letters)}</say-as>')
            letters = []
        out.append(word)
    if letters:
        out.append(f'<say-as interpret-as="characters">{"".join(letters)}</say-as>')
    return "<speak>" + " ".join(out) + "</speak>"


def speak(text: str, path: str | Path, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> Path:
    """Say ``text`` (normalised transcript) into a WAV file (22.05 kHz mono)."""
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["espeak-ng", "-m", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), to_ssml(text)],
        check=True,
        capture_output=True,
    )
    return path


def random_voice(rng: random.Random) -> dict:
    """A random accent, variant, speed (words per minute) and pitch."""
    return {
        "voice": f"{rng.choice(LANGUAGES)}+{rng.choice(VARIANTS)}",
        "speed": rng.randint(120, 185),
        "pitch": rng.randint(25, 75),
    }
