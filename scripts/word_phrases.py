"""Phrases of random words from a word list, one a line: text for the AN4 recipe's
``--synth-texts``, which has a synthesiser say them so that a model hears words beyond AN4's.

Words are taken as they are in the list when they are 3 to 10 lower-case letters (proper nouns,
abbreviations and possessives are left out); each phrase holds 2 to 4 of them.

Usage:
    .venv/bin/python scripts/word_phrases.py [--words /usr/share/dict/words] [--count 500] [--seed 0]
        [--exclude WORD ...] -o phrases.txt
"""
from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from speechrnn.files import write_atomic

WORD = re.compile(r"[a-z]{3,10}")


def phrases(words: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` phrases of 2 to 4 distinct words drawn from ``words``."""
    return [" ".join(rng.sample(words, rng.randint(2, 4))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", default="/usr/share/dict/words", help="a word list, one word a line (Debian's wamerican: apt-get install wamerican)")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", nargs="*", default=[], help="words never to use (say, those a benchmark holds out)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    try:
        lines = Path(args.words).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SystemExit(f"{args.words}: cannot read the word list ({error})")
    excluded = set(args.exclude)
    words = sorted({w for w in lines if WORD.fullmatch(w) and w not in excluded})
    if len(words) < 4:
        raise SystemExit(f"{args.words}: fewer than 4 usable words (3-10 lower-case letters)")
    write_atomic(Path(args.output), "".join(p + "\n" for p in phrases(words, args.count, random.Random(args.seed))))
    print(f"{args.output}: {args.count} phrases from {len(words)} words")


if __name__ == "__main__":
    main()
