"""Hot words, measured on AN4: some words are held out of the LM and the lexicon (every training
transcript holding one of them is left out of the LM's text, so the search can neither spell
nor expect them), then given back with ``--hot-word`` at each boost of ``--boosts``.

For each: WER over the utterances of ``--split`` that hold a held-out word and over the whole
split, the held-out words' occurrences the transcripts spell (recall), and held-out words
spelled beyond the references' (false alarms, over the whole split). Decoding takes the model's
tuned beam size and weights, with the LM of the bundled order built here from the AN4 training
transcripts (the recipe's dev split is never in them). A line with the model's own LM (nothing
held out) and one lexicon-free (any letters, the held-out LM) frame the figures; decoding time
is per audio second, the acoustic model excluded.

The acoustic models heard these words in training (AN4 train has them): the figures measure what
the decoder does with a word its LM and lexicon lack, not the recognition of unheard speech.
``--novel`` measures that instead: AN4-style phrases holding words AN4 never says (NOVEL_WORDS),
and as many without them, said by espeak-ng or ``--engine flite`` (random voices of a fixed
seed, made at run time), decoded with the model's tuned LM and lexicon, which lack those words,
then with them as hot words.

``--phrases K`` adds rows where the held-out words join the lexicon unboosted (boost 0) and each
is boosted only within its K most frequent two-word phrases of the recipe's AN4 train
transcripts (a user's list of phrases): a boost in context, against the same boost everywhere.

Usage:
    .venv/bin/python scripts/bench_hot_words.py [--model offline] [--split dev|test]
        [--held-out enter rubout ...] [--boosts 0 1 2 3 5 8 12] [--phrases K] [--threads 1] [--an4 ../shared/data/an4]
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
from speechrnn.decoding import BeamSearch, BeamSearchConfig, beam_search_for
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


def common_phrases(texts: list[str], words: set[str], k: int) -> list[str]:
    """Each of ``words``' ``k`` most frequent two-word phrases in ``texts`` (ties by first seen)."""
    counts = Counter(" ".join(pair) for text in texts for pair in zip(text.split(), text.split()[1:]))
    return sorted({phrase for word in words for phrase in [p for p, _ in counts.most_common() if word in p.split()][:k]})


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
    parser.add_argument("--novel", action="store_true", help="synthetic phrases with words AN4 never says, with the model's tuned LM and lexicon")
    parser.add_argument("--engine", choices=ENGINES, default="espeak-ng", help="with --novel: the synthesiser saying the phrases")
    parser.add_argument("--boosts", nargs="+", type=float, default=list(BOOSTS))
    parser.add_argument("--phrases", type=int, default=0, metavar="K", help="also boost each held-out word within its K most frequent two-word phrases of AN4 train only")
    parser.add_argument("--order", type=int, default=4, help="order of the LM built here (the bundled LM's: 4)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = set(NOVEL_WORDS if args.novel else args.held_out)

    model = load_model(args.model)
    tuned = beam_search_for(model)
    if tuned is None or tuned.config.lexicon is None:
        raise SystemExit(f"{args.model}: no tuned lexicon search to start from")
    with tempfile.TemporaryDirectory() as tmp:
        if args.novel:
            utterances = [Utterance(audio=str(path), text=text) for text, path in novel_utterances(Path(tmp), args.engine)]
        else:
            utterances = an4_eval_split(args.an4, args.split)
        waves = load_waves(utterances)
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    log_probs = emissions_in_order(model, waves)
    references = [u.text for u in utterances]

    def measure(config: BeamSearchConfig) -> dict:
        search = BeamSearch(config, model.tokenizer)
        started = time.perf_counter()
        texts = [decode(model, lp, search).text for lp in log_probs]
        return {**scores(references, texts, held_out), "decode_rtf": round((time.perf_counter() - started) / audio_seconds, 5)}

    phrases = common_phrases([u.text for u in an4_train_split(args.an4)], held_out, args.phrases) if args.phrases else []

    def rows_for(config: BeamSearchConfig, name: str) -> dict:
        """``config`` as it is, lexicon-free, and with the words as hot words at each boost (and
        the phrases, the words unboosted)."""
        rows = {name: measure(config), "lexicon-free": measure(dataclasses.replace(config, lexicon=None, beam_size_token=None))}
        words = tuple((w, 0.0) for w in sorted(held_out))
        for boost in args.boosts:
            rows[f"hot words at {boost:g}"] = measure(dataclasses.replace(config, hot_words=tuple((w, boost) for w, _ in words)))
            if phrases:
                rows[f"hot phrases at {boost:g}"] = measure(dataclasses.replace(config, hot_words=words + tuple((p, boost) for p in phrases)))
        return rows

    report = {"model": args.model, "data": f"{args.engine} phrases (--novel)" if args.novel else args.split, "words": sorted(held_out), "phrases": phrases}
    if args.novel:
        rows = rows_for(tuned.config, "the model's LM and lexicon, no hot words")
    else:
        kept = [u.text for u in an4_train_split(args.an4) if not held_out & set(u.text.split())]
        report["lm_text_sentences"] = len(kept)
        with tempfile.TemporaryDirectory() as tmp:
            text_file, arpa, lexicon = Path(tmp, "train.txt"), Path(tmp, "lm.arpa"), Path(tmp, "lm.lexicon.txt")
            text_file.write_text("".join(t + "\n" for t in kept))
            build_lm_files([text_file], arpa, lexicon, args.order)
            rows = {"the model's LM (nothing held out)": measure(tuned.config)}
            rows.update(rows_for(dataclasses.replace(tuned.config, lm=str(arpa), lexicon=str(lexicon)), "held out, no hot words"))
    decoding = {k: v for k, v in tuned.config.to_dict().items() if k in ("lm_weight", "word_score", "beam_size")}
    report.update(
        utterances_with_words=sum(1 for r in references if held_out & set(r.split())), utterances=len(references),
        decoding=decoding, threads=args.threads, rows=rows, machine=machine.describe(),
    )
    print(json.dumps(report, indent=1))

if __name__ == "__main__":
    main()
