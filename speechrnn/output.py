"""Writers for transcripts: plain text, JSON lines, SRT and WebVTT."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .audio import STDIN
from .decoding import WordTiming
from .transcribe import FileResult

FORMATS = ("text", "jsonl", "srt", "vtt")
SUFFIXES = {"text": ".txt", "jsonl": ".json", "srt": ".srt", "vtt": ".vtt"}
MAX_CUE_WORDS = 12  # a subtitle cue holds at most this many words
MAX_CUE_GAP = 1.0  # seconds of silence between words that start a new cue


def to_json(result: FileResult, nbest: bool = False) -> dict:
    """The JSON object of one file: transcript, duration and words, or the error; with
    ``nbest``, also the n-best list of a beam search (``[{"text", "score"}]``, best first)."""
    if result.error is not None:
        return {"audio": result.audio, "error": result.error}
    hyp = result.hypothesis
    obj = {
        "audio": result.audio,
        "text": hyp.text,
        "duration": result.duration,
        "words": [w._asdict() for w in hyp.words],
    }
    if nbest:
        obj["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in (hyp, *hyp.alternatives)]
    return obj


def cues(words: list[WordTiming]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues ``(start, end, text)``, split at pauses and length."""
    groups: list[list[WordTiming]] = []
    for word in words:
        if not groups or len(groups[-1]) >= MAX_CUE_WORDS or word.start - groups[-1][-1].end > MAX_CUE_GAP:
            groups.append([])
        groups[-1].append(word)
    return [(g[0].start, g[-1].end, " ".join(w.word for w in g)) for g in groups]


def timestamp(seconds: float, decimal: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def render(result: FileResult, fmt: str, nbest: bool = False) -> str:
    """The whole output for one successful file in ``fmt`` (ends with a newline)."""
    if fmt == "text":
        return result.hypothesis.text + "\n"
    if fmt == "jsonl":
        return json.dumps(to_json(result, nbest)) + "\n"
    if fmt == "srt":
        blocks = [f"{i}\n{timestamp(a, ',')} --> {timestamp(b, ',')}\n{text}\n" for i, (a, b, text) in enumerate(cues(result.hypothesis.words), 1)]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [f"{timestamp(a, '.')} --> {timestamp(b, '.')}\n{text}\n" for a, b, text in cues(result.hypothesis.words)]
        return "WEBVTT\n\n" + "\n".join(blocks)
    raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


class OutputNamer:
    """Output file names in a folder: an input found in a folder argument keeps its place
    under it (``recordings/day1/a.wav`` given ``recordings`` -> ``FOLDER/day1/a.srt``), any
    other input its stem, plus the format's suffix; ``-2``, ``-3``... are added where two
    inputs would share a name."""

    def __init__(self, folder: str | os.PathLike, fmt: str, roots: Iterable[str | os.PathLike] = ()):
        self.folder = Path(folder)
        self.suffix = SUFFIXES[fmt]
        self.roots = [Path(root) for root in roots]  # the folder arguments the inputs were found in
        self.used: set[str] = set()

    def __call__(self, audio: str) -> Path:
        stem = "stdin" if audio == STDIN else Path(audio).stem or "audio"
        for root in self.roots:
            if Path(audio).is_relative_to(root):
                stem = Path(audio).relative_to(root).with_suffix("").as_posix()
                break
        name, n = stem, 1
        while name in self.used:
            n += 1
            name = f"{stem}-{n}"
        self.used.add(name)
        return self.folder / (name + self.suffix)
