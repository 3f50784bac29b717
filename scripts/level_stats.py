"""The frame levels that a streaming model's level tracking starts from (session 22).

Usage:
    .venv/bin/python scripts/level_stats.py [--split train|dev|test] [--an4 ../shared/data/an4]

Prints, over the split's utterances, the median of each utterance's loudest frame level and of
its first frame's level, and the median difference, in dB of a frame's total mel power
(:meth:`speechrnn.features.Frontend.frame_level_db`): the figures behind ``recipes/an4/run.py
--level-start-db`` (the loudest) and ``--level-start-lead-db`` (the difference).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from speechrnn.audio import load_audio
from speechrnn.data import DEFAULT_AN4, an4_eval_split, an4_train_split
from speechrnn.features import Frontend, FrontendConfig


def loudest_and_first(frontend: Frontend, wave: torch.Tensor) -> tuple[float, float]:
    """A waveform's loudest frame level and its first frame's, in dB."""
    levels = frontend.frame_level_db(wave[None])[0]
    return float(levels.max()), float(levels[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["train", "dev", "test"], default="train", help="train: the recipe's training utterances (AN4 train less dev)")
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    args = parser.parse_args()
    utterances = an4_train_split(args.an4) if args.split == "train" else an4_eval_split(args.an4, args.split)
    frontend = Frontend(FrontendConfig())  # mel energies only: the same for every model's frontend settings here
    pairs = np.array([loudest_and_first(frontend, torch.from_numpy(load_audio(u.audio))) for u in utterances])
    print(json.dumps({
        "split": args.split,
        "utterances": len(utterances),
        "median_loudest_db": round(float(np.median(pairs[:, 0])), 1),
        "median_first_db": round(float(np.median(pairs[:, 1])), 1),
        "median_loudest_above_first_db": round(float(np.median(pairs[:, 0] - pairs[:, 1])), 1),
    }))


if __name__ == "__main__":
    main()
