"""How many output frames one model's characters come after another's (session 30).

Usage:
    .venv/bin/python scripts/spike_lag.py [--student streaming] [--teacher offline] [--split dev|test|train] [--an4 ../shared/data/an4]

Each model reads each utterance of the split whole; a character's frame is the first frame of
its run on the model's greedy path. Over the utterances whose two greedy transcripts spell the
same characters, the lag of each character (the student's frame less the teacher's) is
counted; prints their median and deciles, in output frames: the figure behind the recipes'
``--distill-shift`` (how far the teacher's frames are delayed to meet a streaming student's).
The two models need the same output frames.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from speechrnn.audio import load_audio
from speechrnn.data import DEFAULT_AN4, an4_eval_split, an4_train_split
from speechrnn.model import SpeechModel, load_model


def character_frames(model: SpeechModel, wave: torch.Tensor) -> list[tuple[int, int]]:
    """``(frame, token)`` of each character on the greedy path of ``model`` over a waveform."""
    with torch.no_grad():
        log_probs, out_lens = model(*model.features(wave[None], torch.tensor([wave.shape[0]])))
    path, found, previous = log_probs[0, : int(out_lens[0])].argmax(-1).tolist(), [], model.tokenizer.blank
    for frame, token in enumerate(path):
        if token != model.tokenizer.blank and token != previous:
            found.append((frame, token))
        previous = token
    return found


def lags(student: SpeechModel, teacher: SpeechModel, waves) -> tuple[list[int], int]:
    """Every character's lag in frames over the utterances both models spell alike, and how many those are."""
    found, agreeing = [], 0
    for wave in waves:
        mine, theirs = character_frames(student, wave), character_frames(teacher, wave)
        if [token for _, token in mine] == [token for _, token in theirs]:
            agreeing += 1
            found += [a - b for (a, _), (b, _) in zip(mine, theirs)]
    return found, agreeing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="streaming", help="model file or bundled name (default: %(default)s)")
    parser.add_argument("--teacher", default="offline", help="model file or bundled name (default: %(default)s)")
    parser.add_argument("--split", choices=["train", "dev", "test"], default="dev", help="train: the recipe's training utterances (AN4 train less dev)")
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    args = parser.parse_args()
    student, teacher = load_model(args.student), load_model(args.teacher)
    if student.config.frame_samples != teacher.config.frame_samples:
        parser.error(f"{args.student} and {args.teacher} have different output frames ({student.config.frame_samples} and {teacher.config.frame_samples} samples)")
    utterances = an4_train_split(args.an4) if args.split == "train" else an4_eval_split(args.an4, args.split)
    found, agreeing = lags(student, teacher, (torch.from_numpy(load_audio(u.audio)) for u in utterances))
    if len(found) < 2:
        parser.error(f"{args.split}: too few utterances that both models spell alike ({agreeing})")
    print(json.dumps({
        "student": args.student,
        "teacher": args.teacher,
        "split": args.split,
        "utterances": len(utterances),
        "spelled_alike": agreeing,
        "characters": len(found),
        "median_lag_frames": statistics.median(found),
        "lag_deciles_frames": statistics.quantiles(found, n=10),
        "frame_ms": round(student.config.frame_shift * 1000, 1),
    }))


if __name__ == "__main__":
    main()
