"""Manifests for an English Common Voice release (commonvoice.mozilla.org), for
recipes/manifest/run.py.

Usage:
    .venv/bin/python recipes/commonvoice/prepare.py /data/cv-corpus-NN/en --out data/commonvoice
    .venv/bin/python recipes/manifest/run.py --train data/commonvoice/train.jsonl \\
        --dev data/commonvoice/dev.jsonl --test data/commonvoice/test.jsonl --exp exp/commonvoice

Reads ``train.tsv``, ``dev.tsv`` and ``test.tsv`` (or the splits named with ``--splits``) of a
language folder: tab-separated, with a header naming the columns ``client_id``, ``path`` (an
MP3 under ``clips/``) and ``sentence``. Durations come from ``clip_durations.tsv`` (milliseconds)
where the release has it, else from the MP3 files. Writes ``OUT/SPLIT.jsonl``.

Left out, counted on stdout: sentences with digits or symbols read as words (their spoken
form is unknown: "1990" may be "nineteen ninety" or "one nine nine oh"; "&" "and" or "ampersand"), with letters that are not a-z once accents are
stripped and letters such as "ß" spelled in a-z (the models spell English letters only;
:func:`speechrnn.text.unspellable`), or with nothing left after normalisation;
and clips that are missing or unreadable (named in a warning). Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

from speechrnn.data import Utterance, read_durations, write_manifest
from speechrnn.text import normalize_text, unspellable


def clip_durations(root: Path) -> dict[str, float]:
    """``clip name -> seconds`` from ``clip_durations.tsv``; empty where the release lacks it."""
    table = root / "clip_durations.tsv"
    if not table.is_file():
        return {}
    with open(table, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows, None)  # header: clip, duration[ms]
        return {row[0]: int(row[1]) / 1000 for row in rows if len(row) >= 2 and row[1].isdigit()}


def split_utterances(root: Path, split: str, durations: dict[str, float]) -> tuple[list[Utterance], Counter]:
    """The usable utterances of ``SPLIT.tsv`` and the counts of those left out, by reason."""
    table = root / f"{split}.tsv"
    left_out, listed = Counter(), []
    with open(table, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(rows.fieldnames or ())
        if missing:
            raise ValueError(f"{table}: no column {', '.join(sorted(missing))} in its header")
        for row in rows:
            sentence = row["sentence"] or ""
            text = normalize_text(sentence)
            if unspellable(sentence):
                left_out["digits, symbols or letters outside a-z"] += 1
            elif not text:
                left_out["empty transcript"] += 1
            else:
                listed.append((root / "clips" / row["path"], text, row.get("client_id") or ""))

    seconds = read_durations([path for path, _, _ in listed], known=durations)
    left_out["missing or unreadable clip"] += sum(s is None for s in seconds)
    utterances = [Utterance(str(path.resolve()), text, s, speaker) for (path, text, speaker), s in zip(listed, seconds) if s is not None]
    return utterances, +left_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a Common Voice language folder (holding clips/ and train.tsv, dev.tsv, test.tsv)")
    parser.add_argument("--out", required=True, help="folder for the manifests")
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="TSV files to read, without .tsv (default: %(default)s)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    missing = [split for split in args.splits if not (root / f"{split}.tsv").is_file()]
    if missing:
        print(f"error: {root}: not a Common Voice language folder (no {', '.join(s + '.tsv' for s in missing)})", file=sys.stderr)
        return 2
    durations = clip_durations(root)
    for split in args.splits:
        try:
            utterances, left_out = split_utterances(root, split, durations)
        except (ValueError, UnicodeDecodeError) as error:  # a TSV without the columns, or not UTF-8
            print(f"error: {root / (split + '.tsv')}: {error}" if isinstance(error, UnicodeDecodeError) else f"error: {error}", file=sys.stderr)
            return 2
        target = Path(args.out) / f"{split}.jsonl"
        write_manifest(target, utterances)
        hours = sum(u.duration for u in utterances) / 3600
        dropped = "; left out: " + ", ".join(f"{n} {reason}" for reason, n in left_out.items()) if left_out else ""
        print(f"{target}: {len(utterances)} utterances, {hours:.1f} h{dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
