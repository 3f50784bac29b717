"""Where in an utterance a model's word errors fall: its first word against the rest.

Usage:
    .venv/bin/python scripts/error_positions.py [--model offline] [--split test|dev|train] [--lm default|none]
        [--an4 ../shared/data/an4] [--show]

Decodes the AN4 split, aligns each transcript with its reference (jiwer) and charges every
error to a reference word: a substitution or deletion to the word it replaces or drops, an
insertion to the reference word it comes before (the last one after the end). Prints the error
rate of the utterances' first words and of all later words (errors per reference word, in
percent); ``--show`` also lists the utterances whose first word is wrong. ``--split train``
reads the recipe's own training utterances (AN4 train less dev): what a model fails to learn
rather than what it fails to generalise to.
"""
from __future__ import annotations

import argparse
import json

import jiwer

from speechrnn.data import DEFAULT_AN4, an4_eval_split, an4_train_split
from speechrnn.decoding import beam_search_for
from speechrnn.evaluate import evaluate
from speechrnn.model import load_model


def errors_by_position(reference: str, hypothesis: str) -> list[int]:
    """Word errors charged to each word of ``reference`` (which must not be empty)."""
    words = reference.split()
    errors = [0] * len(words)
    if not hypothesis.split():
        return [1] * len(words)  # all deleted (jiwer does not align an empty hypothesis)
    for chunk in jiwer.process_words(reference, hypothesis).alignments[0]:
        if chunk.type in ("substitute", "delete"):
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                errors[i] += 1
        elif chunk.type == "insert":
            errors[min(chunk.ref_start_idx, len(words) - 1)] += chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="offline")
    parser.add_argument("--split", choices=["test", "dev", "train"], default="test")
    parser.add_argument("--lm", default="default", help="'default' (the model's tuned LM), 'none' (greedy) or an ARPA path")
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--show", action="store_true", help="list the utterances whose first word is wrong")
    args = parser.parse_args()
    utterances = an4_train_split(args.an4) if args.split == "train" else an4_eval_split(args.an4, args.split)
    model = load_model(args.model)
    result = evaluate(model, utterances, search=beam_search_for(model, args.lm))
    first = rest = n_rest = 0
    for utterance, hypothesis in zip(utterances, result.hypotheses):
        errors = errors_by_position(utterance.text, hypothesis.text)
        first, rest, n_rest = first + errors[0], rest + sum(errors[1:]), n_rest + len(errors) - 1
        if args.show and errors[0]:
            print(f"{utterance.text!r} -> {hypothesis.text!r}")
    n = len(utterances)
    print(json.dumps({
        "model": args.model, "split": args.split, "lm": args.lm, "wer": round(result.wer, 2),
        "first_word_errors_pct": round(100 * first / n, 1), "first_words": n, "first_word_errors": first,
        "later_word_errors_pct": round(100 * rest / max(n_rest, 1), 1), "later_words": n_rest, "later_word_errors": rest,
    }))


if __name__ == "__main__":
    main()
