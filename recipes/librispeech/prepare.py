"""Manifests for LibriSpeech (openslr.org/12), for recipes/manifest/run.py.

Usage:
    .venv/bin/python recipes/librispeech/prepare.py /data/LibriSpeech --out data/librispeech
    .venv/bin/python recipes/manifest/run.py --train data/librispeech/train-clean-100.jsonl \\
        --dev data/librispeech/dev-clean.jsonl --test data/librispeech/test-clean.jsonl data/librispeech/test-other.jsonl \\
        --exp exp/librispeech-100 --layers 5 --hidden 512

Reads every subset folder found under the root (``train-clean-100``, ``dev-clean``, ...; or
only those named with ``--subsets``): each ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` lists
``UTTERANCE-ID TRANSCRIPT`` lines, the audio being ``UTTERANCE-ID.flac`` beside it. Writes
``OUT/SUBSET.jsonl`` with absolute audio paths, normalised transcripts, durations (from the
FLAC headers) and speaker ids. A listed file that is missing or unreadable is left out with a
warning naming it. Nothing is downloaded: the corpus must be on disk.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechrnn.data import Utterance, read_durations, write_manifest
from speechrnn.text import normalize_text

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean", "test-other")


def subset_utterances(folder: Path) -> list[Utterance]:
    """The utterances of one LibriSpeech subset folder, in file-name order."""
    listed = []
    for transcript in sorted(folder.glob("*/*/*.trans.txt")):
        for line_no, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            if not text.strip():
                print(f"warning: {transcript}:{line_no}: no transcript after the id, left out", file=sys.stderr)
                continue
            listed.append((transcript.parent / f"{utt_id}.flac", normalize_text(text), utt_id.split("-")[0]))

    durations = read_durations([path for path, _, _ in listed])
    return [Utterance(str(path.resolve()), text, seconds, speaker) for (path, text, speaker), seconds in zip(listed, durations) if seconds is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the LibriSpeech folder (holding train-clean-100/, dev-clean/, ...)")
    parser.add_argument("--out", required=True, help="folder for the manifests")
    parser.add_argument("--subsets", nargs="+", default=None, help=f"subsets to read (default: those of {', '.join(SUBSETS)} found)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    subsets = args.subsets or [name for name in SUBSETS if (root / name).is_dir()]
    missing = [name for name in subsets if not (root / name).is_dir()]
    if missing or not subsets:
        print(f"error: {root}: no LibriSpeech subset folder{' ' + ', '.join(missing) if missing else 's'} found", file=sys.stderr)
        return 2
    for name in subsets:
        utterances = subset_utterances(root / name)
        target = Path(args.out) / f"{name}.jsonl"
        write_manifest(target, utterances)
        hours = sum(u.duration for u in utterances) / 3600
        print(f"{target}: {len(utterances)} utterances, {hours:.1f} h, {len({u.speaker for u in utterances})} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
