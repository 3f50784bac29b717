"""Is model A better than model B, or is the difference what another set of speakers would undo?

Usage:
    .venv/bin/python scripts/compare_models.py MODEL_A MODEL_B [--split dev|test] [--lm default|none]
        [--rescore-a PARTNER [--weight-a W]] [--rescore-b PARTNER [--weight-b W]] [--an4 ../shared/data/an4] [--resamples 2000]

Decodes the split with both models and prints both WERs, their difference (A - B, points) and
a 95% interval for it from a paired bootstrap over utterances (the same resampled utterances
for both models), with the share of resamples in which A is better. AN4's dev split (79
utterances, 443 words) cannot tell models apart that differ by a point or two; this says by
how much a difference has to exceed that before it is a reason to pick a model.

``--rescore-a`` / ``--rescore-b`` give A or B a second pass (a partner model re-ranks its n best
at the weight its settings record for that partner, as ``--rescore`` does elsewhere, or at
``--weight-a`` / ``--weight-b``), so a model with and without a second pass can be compared:
``compare_models.py streaming streaming --lm default --rescore-a streaming-partner``. Without
them each model decodes as its settings say (no second pass for the bundled models); the output
gives each side's second pass as `speechrnn evaluate` does (null: none).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from speechrnn import evaluate
from speechrnn.data import DEFAULT_AN4, an4_eval_split, load_waves
from speechrnn.decoding import beam_search_for
from speechrnn.model import load_model
from speechrnn.transcribe import recognize


def word_errors(model, search, waves: list[torch.Tensor], references: list[str]) -> np.ndarray:
    """``(utterances,)`` word errors (substitutions + deletions + insertions) of each utterance,
    decoded by ``search`` (None: greedy)."""
    hypotheses = recognize(model, waves, search=search)
    return np.array([evaluate.word_errors(reference, hypothesis.text) for reference, hypothesis in zip(references, hypotheses)])


def side(model_path: str, lm: str, rescore: str, weight: float | None) -> tuple:
    """A loaded model and the search it decodes with (None: greedy)."""
    model = load_model(model_path)
    return model, beam_search_for(model, lm, rescore=rescore, rescore_weight=weight)


def second_pass(search) -> dict | None:
    """The output's account of a side's second pass, as `speechrnn evaluate` gives it (None: none)."""
    return search.rescorer.config.to_dict() if search is not None and search.rescorer is not None else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("--split", choices=("dev", "test"), default="dev", help="AN4 dev split of train (default) or AN4 test")
    parser.add_argument("--lm", default="none", help="'none' (greedy, default), 'default' (each model's tuned LM) or an ARPA path")
    parser.add_argument("--rescore-a", default="default", metavar="PARTNER", help="second pass for A: a partner model's name or file, or 'none' (default: A's settings')")
    parser.add_argument("--rescore-b", default="default", metavar="PARTNER", help="the same for B")
    parser.add_argument("--weight-a", type=float, help="A's partner's weight (default: the one A's settings record for it, else 0.25)")
    parser.add_argument("--weight-b", type=float, help="the same for B")
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.lm == "none" and {args.rescore_a, args.rescore_b} - {"default", "none"}:
        parser.error("a second pass re-ranks a beam search's n best: give --lm default or an ARPA path")

    utterances = an4_eval_split(args.an4, args.split)
    waves = load_waves(utterances)
    references = [u.text for u in utterances]
    n_words = np.array([len(text.split()) for text in references])
    model_a, search_a = side(args.model_a, args.lm, args.rescore_a, args.weight_a)
    errors_a = word_errors(model_a, search_a, waves, references)
    model_b, search_b = side(args.model_b, args.lm, args.rescore_b, args.weight_b)
    errors_b = word_errors(model_b, search_b, waves, references)

    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, len(utterances), size=(args.resamples, len(utterances)))  # same utterances for both
    diffs = 100 * (errors_a[picks].sum(1) - errors_b[picks].sum(1)) / n_words[picks].sum(1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    print(json.dumps({
        "split": args.split,
        "utterances": len(utterances),
        "words": int(n_words.sum()),
        "lm": args.lm,
        "rescore_a": second_pass(search_a),
        "rescore_b": second_pass(search_b),
        "wer_a": round(100 * errors_a.sum() / n_words.sum(), 2),
        "wer_b": round(100 * errors_b.sum() / n_words.sum(), 2),
        "a_minus_b": round(100 * (errors_a.sum() - errors_b.sum()) / n_words.sum(), 2),
        "a_minus_b_95": [round(float(low), 2), round(float(high), 2)],
        "share_a_better": round(float((diffs < 0).mean()), 3),
        "resamples": args.resamples,
    }))


if __name__ == "__main__":
    main()
