"""Hot words, measured on AN4: some words are held out of the LM and the lexicon (every training
transcript holding one of them is left out of the LM's text, so the search can neither spell
nor expect them), then given back with ``--hot-word`` at each boost of ``--boosts``.

For each: WER over the utterances of ``--split`` that hold a held-out word and over the whole
split, the held-out words' occurrences the transcripts spell (recall), and held-out words
spelled beyond the references' (false alarms, over the whole split). Decoding takes the model's
tuned beam size and weights, with the LM of the bundled order built here from the AN4 training
transcripts (the recipe's dev split is never in them). A line with the bundled LM (nothing held
out) and one lexicon-free (any letters, the held-out LM) frame the figures; decoding time is per
audio second, the acoustic model excluded.

The acoustic models heard these words in training (AN4 train has them): the figures measure what
the decoder does with a word its LM and lexicon lack, not the recognition of unheard speech.

Usage:
    .venv/bin/python scripts/bench_hot_words.py [--model offline] [--split dev|test]
        [--held-out enter rubout ...] [--boosts 0 1 2 3 5 8 12] [--threads 1] [--an4 ../shared/data/an4]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from speechrnn import machine
from speechrnn.data import DEFAULT_AN4, an4_eval_split, an4_train_split, load_waves
from speechrnn.decoding import BeamSearch, beam_search_for
from speechrnn.evaluate import error_rates
from speechrnn.lm import build_lm_files
from speechrnn.model import load_model
from speechrnn.transcribe import decode, emissions_in_order

# Commands and tens of AN4's vocabulary, chosen (session 58, before any figure) as frequent
# words of more than one letter that are neither digits nor letters, which most of AN4 is.
HELD_OUT = ("enter", "rubout", "erase", "sixty", "nineteen", "fifty", "twenty", "seventy")
BOOSTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)


def scores(references: list[str], texts: list[str], held_out: set[str]) -> dict:
    """WERs (with held-out words, all), recall and false alarms of the held-out words."""
    chosen = [i for i, r in enumerate(references) if held_out & set(r.split())]
    found = occurrences = false_alarms = 0
    for reference, text in zip(references, texts):
        wanted = Counter(w for w in reference.split() if w in held_out)
        spelled = Counter(w for w in text.split() if w in held_out)
        occurrences += sum(wanted.values())
        found += sum((wanted & spelled).values())
        false_alarms += sum((spelled - wanted).values())
    return {
        "wer_with_held_out": round(error_rates([references[i] for i in chosen], [texts[i] for i in chosen])[0], 2),
        "wer_all": round(error_rates(references, texts)[0], 2),
        "recall": f"{found}/{occurrences}",
        "false_alarms": false_alarms,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", default="offline")
    parser.add_argument("--split", choices=("test", "dev"), default="dev", help="the recipe's dev split of AN4 train, or AN4 test")
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--boosts", nargs="+", type=float, default=list(BOOSTS))
    parser.add_argument("--order", type=int, default=4, help="order of the LM built here (the bundled LM's: 4)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = set(args.held_out)

    model = load_model(args.model)
    bundled = beam_search_for(model)
    if bundled is None or bundled.config.lexicon is None:
        raise SystemExit(f"{args.model}: no tuned lexicon search to start from")
    utterances = an4_eval_split(args.an4, args.split)
    waves = load_waves(utterances)
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    log_probs = emissions_in_order(model, waves)
    references = [u.text for u in utterances]
    kept = [u.text for u in an4_train_split(args.an4) if not held_out & set(u.text.split())]

    def measure(search: BeamSearch) -> dict:
        started = time.perf_counter()
        texts = [decode(model, lp, search).text for lp in log_probs]
        return {**scores(references, texts, held_out), "decode_rtf": round((time.perf_counter() - started) / audio_seconds, 5)}

    with tempfile.TemporaryDirectory() as tmp:
        text_file, arpa, lexicon = Path(tmp, "train.txt"), Path(tmp, "lm.arpa"), Path(tmp, "lm.lexicon.txt")
        text_file.write_text("".join(t + "\n" for t in kept))
        build_lm_files([text_file], arpa, lexicon, args.order)
        held = dataclasses.replace(bundled.config, lm=str(arpa), lexicon=str(lexicon))
        rows = {"bundled LM (nothing held out)": measure(bundled), "held out, no hot words": measure(BeamSearch(held, model.tokenizer))}
        free = dataclasses.replace(held, lexicon=None, beam_size_token=None)
        rows["held out, lexicon-free"] = measure(BeamSearch(free, model.tokenizer))
        for boost in args.boosts:
            hot = dataclasses.replace(held, hot_words=tuple((w, boost) for w in sorted(held_out)))
            rows[f"hot words at {boost:g}"] = measure(BeamSearch(hot, model.tokenizer))
    decoding = {k: v for k, v in bundled.config.to_dict().items() if k in ("lm_weight", "word_score", "beam_size")}
    report = {
        "model": args.model, "split": args.split, "held_out": sorted(held_out), "lm_text_sentences": len(kept),
        "utterances_with_held_out": sum(1 for r in references if held_out & set(r.split())), "utterances": len(references),
        "decoding": decoding, "threads": args.threads, "rows": rows, "machine": machine.describe(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
