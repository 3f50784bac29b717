"""Synthetic speech with espeak-ng and flite: sample audio for demos and tests, and extra
training voices. Both are Debian packages (``apt-get install espeak-ng flite``); nothing is
downloaded. espeak-ng is a formant synthesiser with many accents and voice variants; flite
(CMU's small engine, voices recorded from four speakers) sounds nothing like it, so each is a
voice the other's training speech does not prepare a model for.
"""
from __future__ import annotations

import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# espeak-ng accents and voice variants that sound like a person (robot and whisper variants left out).
LANGUAGES = ("en-us", "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
VARIANTS = (
    "male1", "male2", "male3", "male4", "male5", "male6", "male7", "male8",
    "female1", "female2", "female3", "female4", "female5",
    "Alex", "Andy", "Annie", "Belinda", "Benjamin", "Caleb", "David", "Ed", "Edward",
    "John", "Linda", "Max", "Michael", "Mike", "Paul", "Rob", "Robert", "Steph", "travis", "victor", "Zac",
)


# flite's built-in voices that read any text at 16 kHz: awb (Scottish English, male), rms and
# kal16 (American English, male), slt (American English, female). ("kal" is kal16 at 8 kHz and
# "awb_time" only tells the time.)
FLITE_VOICES = ("awb", "rms", "slt", "kal16")
ENGINES = ("espeak-ng", "flite")  # each one's name is its program's


def _known(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"unknown speech engine {engine!r} (known: {', '.join(ENGINES)})")
    return engine


def engine_available(engine: str) -> bool:
    return shutil.which(_known(engine)) is not None


def espeak_available() -> bool:
    return engine_available("espeak-ng")


def flite_available() -> bool:
    return engine_available("flite")


def _is_letter(word: str) -> bool:
    """A lone letter: AN4 spells words letter by letter."""
    return len(word) == 1 and word.isalpha()


def to_ssml(text: str) -> str:
    """Mark runs of single-letter words as spelled characters, so 'a' is said as the letter.

    >>> to_ssml("rubout g m e f three")
    '<speak>rubout <say-as interpret-as="characters">gmef</say-as> three</speak>'
    """
    out, letters = [], []
    for word in text.split():
        if _is_letter(word):
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


def letters_upper(text: str) -> str:
    """flite reads a lower-case single letter as a word ("a" as in "a cat"), an upper-case one
    by its name, which is what AN4's spelled words mean.

    >>> letters_upper("rubout a b three")
    'rubout A B three'
    """
    return " ".join(word.upper() if _is_letter(word) else word for word in text.split())


def speak_flite(text: str, path: str | Path, voice: str = "slt", stretch: float = 1.0) -> Path:
    """Say ``text`` (normalised transcript) with a flite voice into a WAV file (16 kHz mono);
    ``stretch`` > 1 speaks more slowly."""
    if not flite_available():
        raise RuntimeError("flite is not installed (apt-get install flite)")
    if voice not in FLITE_VOICES:
        raise ValueError(f"unknown flite voice {voice!r} (known: {', '.join(FLITE_VOICES)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t", letters_upper(text), "-o", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def random_flite_voice(rng: random.Random, voices: tuple[str, ...] = FLITE_VOICES) -> dict:
    """A random flite voice of ``voices`` and speaking rate (0.85-1.2 times its own duration)."""
    return {"voice": rng.choice(voices), "stretch": round(rng.uniform(0.85, 1.2), 3)}


def random_engine_voice(engine: str, rng: random.Random, flite_voices: tuple[str, ...] = FLITE_VOICES) -> dict:
    """A random voice of ``engine``: ``random_voice`` (espeak-ng) or ``random_flite_voice`` of
    ``flite_voices`` (flite); each draws from ``rng`` as it does called alone."""
    return random_voice(rng) if _known(engine) == "espeak-ng" else random_flite_voice(rng, flite_voices)


def speak_with(engine: str, text: str, path: str | Path, voice: dict) -> Path:
    """Say ``text`` with ``engine`` and a voice of ``random_engine_voice``."""
    return speak(text, path, **voice) if _known(engine) == "espeak-ng" else speak_flite(text, path, **voice)


def speak_all(engine: str, jobs: list[tuple[str, Path, dict]], workers: int = 2) -> list[Path]:
    """Say each ``(text, path, voice)`` with ``engine``, ``workers`` at a time (the engines run
    as programs, one per job)."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: speak_with(engine, *job), jobs))
