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
``--novel`` measures that instead: AN4-style phrases holding words AN4 never says (NOVEL_WORDS),
and as many without them, said by espeak-ng or ``--engine flite`` (random voices of a fixed
seed, made at run time),
decoded with the bundled LM and lexicon, which lack those words, then with them as hot words.

Usage:
    .venv/bin/python scripts/bench_hot_words.py [--model offline] [--split dev|test]
        [--held-out enter rubout ...] [--boosts 0 1 2 3 5 8 12] [--threads 1] [--an4 ../shared/data/an4]
    .venv/bin/python scripts/bench_hot_words.py --novel [--engine espeak-ng|flite] [--model offline] [--boosts ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from speechrnn import machine
from speechrnn.data import DEFAULT_AN4, Utterance, an4_eval_split, an4_train_split, load_waves
from speechrnn.decoding import BeamSearch, beam_search_for
from speechrnn.evaluate import error_rates
from speechrnn.lm import build_lm_files
from speechrnn.model import load_model
from speechrnn.synth import ENGINES, random_engine_voice, speak_all
from speechrnn.transcribe import decode, emissions_in_order

# Commands and tens of AN4's vocabulary, chosen (session 58, before any figure) as frequent
# words of more than one letter that are neither digits nor letters, which most of AN4 is.
HELD_OUT = ("enter", "rubout", "erase", "sixty", "nineteen", "fifty", "twenty", "seventy")
BOOSTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
# Everyday words AN4 never says, and phrases that put each among AN4's words (session 58, chosen
# before any figure); each phrase is also said without its word, for the false alarms.
NOVEL_WORDS = ("london", "paris", "ticket", "coffee", "monday", "friday", "window", "garden", "doctor", "music", "yellow", "robot")
NOVEL_PHRASES = ("enter {} two five", "{} yes", "rubout {} three")


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
        "wer_with_words": round(error_rates([references[i] for i in chosen], [texts[i] for i in chosen])[0], 2),
        "wer_all": round(error_rates(references, texts)[0], 2),
        "recall": f"{found}/{occurrences}",
        "false_alarms": false_alarms,
    }


def novel_utterances(folder: Path, engine: str = "espeak-ng", seed: int = 0) -> list[tuple[str, Path]]:
    """(text, WAV) of every NOVEL_PHRASES phrase with each NOVEL_WORDS word, and without it,
    each said by ``engine`` in a random voice."""
    rng = random.Random(seed)
    texts = [phrase.format(word) for word in NOVEL_WORDS for phrase in NOVEL_PHRASES]
    texts += [" ".join(phrase.format("").split()) for _ in NOVEL_WORDS for phrase in NOVEL_PHRASES]
    jobs = [(text, folder / f"{i:03d}.wav", random_engine_voice(engine, rng)) for i, text in enumerate(texts)]
    speak_all(engine, jobs)
    return [(text, path) for text, path, _ in jobs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", default="offline")
    parser.add_argument("--split", choices=("test", "dev"), default="dev", help="the recipe's dev split of AN4 train, or AN4 test")
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--novel", action="store_true", help="synthetic phrases with words AN4 never says, with the bundled LM and lexicon")
    parser.add_argument("--engine", choices=ENGINES, default="espeak-ng", help="with --novel: the synthesiser saying the phrases")
    parser.add_argument("--boosts", nargs="+", type=float, default=list(BOOSTS))
    parser.add_argument("--order", type=int, default=4, help="order of the LM built here (the bundled LM's: 4)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = set(NOVEL_WORDS if args.novel else args.held_out)

    model = load_model(args.model)
    bundled = beam_search_for(model)
    if bundled is None or bundled.config.lexicon is None:
        raise SystemExit(f"{args.model}: no tuned lexicon search to start from")
    with tempfile.TemporaryDirectory() as tmp:
        if args.novel:
            pairs = novel_utterances(Path(tmp), args.engine)
            utterances = [Utterance(audio=str(path), text=text) for text, path in pairs]
        else:
            utterances = an4_eval_split(args.an4, args.split)
        waves = load_waves(utterances)
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    log_probs = emissions_in_order(model, waves)
    references = [u.text for u in utterances]

    def measure(search: BeamSearch) -> dict:
        started = time.perf_counter()
        texts = [decode(model, lp, search).text for lp in log_probs]
        return {**scores(references, texts, held_out), "decode_rtf": round((time.perf_counter() - started) / audio_seconds, 5)}

    decoding = {k: v for k, v in bundled.config.to_dict().items() if k in ("lm_weight", "word_score", "beam_size")}
    report = {"model": args.model, "data": f"{args.engine} phrases (--novel)" if args.novel else args.split, "words": sorted(held_out)}
    if args.novel:
        rows = {"the model's LM and lexicon, no hot words": measure(bundled)}
        rows["lexicon-free, the model's LM"] = measure(BeamSearch(dataclasses.replace(bundled.config, lexicon=None, beam_size_token=None), model.tokenizer))
        for boost in args.boosts:
            hot = dataclasses.replace(bundled.config, hot_words=tuple((w, boost) for w in sorted(held_out)))
            rows[f"hot words at {boost:g}"] = measure(BeamSearch(hot, model.tokenizer))
        report.update(utterances_with_words=sum(1 for r in references if held_out & set(r.split())), utterances=len(references))
        print(json.dumps({**report, "decoding": decoding, "threads": args.threads, "rows": rows, "machine": machine.describe()}, indent=1))
        return
    kept = [u.text for u in an4_train_split(args.an4) if not held_out & set(u.text.split())]
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
    report.update(
        lm_text_sentences=len(kept), utterances_with_words=sum(1 for r in references if held_out & set(r.split())), utterances=len(references),
        decoding=decoding, threads=args.threads, rows=rows, machine=machine.describe(),
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
