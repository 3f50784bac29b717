"""Cost and gain of beam search with the LM: decoding time per audio second (the acoustic
model excluded) and AN4 test (or dev) WER, greedy against the model's tuned beam search; and, as a
stream decodes, the time of one decoder step per chunk of ``--chunk-frames`` frames (5: the
100 ms chunks of ``speechrnn live``), each utterance's frames fed chunk by chunk.

Usage:
    .venv/bin/python scripts/bench_beam.py [--model offline] [--lm default|ARPA] [--lexicon none|FILE]
        [--beam-size-token N] [--split test|dev] [--threads 1] [--chunk-frames 5] [--an4 ../shared/data/an4]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from speechrnn import machine
from speechrnn.data import DEFAULT_AN4, an4_eval_split, load_waves
from speechrnn.decoding import beam_search_for, new_decoder
from speechrnn.evaluate import error_rates
from speechrnn.model import load_model
from speechrnn.transcribe import decode, emissions_in_order


def chunked_step_seconds(model, log_probs: list[torch.Tensor], search, chunk_frames: int) -> float:
    """Mean seconds of one decoder ``step`` (``search`` None: greedy) over chunks of
    ``chunk_frames`` frames of every utterance in ``log_probs`` (``finish`` not counted)."""
    seconds, steps = 0.0, 0
    for lp in log_probs:
        decoder = new_decoder(model, search)
        chunks = lp.split(chunk_frames)
        started = time.perf_counter()
        for chunk in chunks:
            decoder.step(chunk)
        seconds += time.perf_counter() - started
        steps += len(chunks)
        decoder.finish()
    return seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", default="offline")
    parser.add_argument("--lm", default="default", help="'default' (the model's tuned LM) or an ARPA path")
    parser.add_argument("--lexicon", default=None, help="a lexicon, or 'none' for lexicon-free search (default: the tuned setting)")
    parser.add_argument("--beam-size-token", type=int, default=None, help="tokens tried per frame (default: the setting's, else the search kind's)")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="AN4 test, or the recipe's dev split of AN4 train")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk-frames", type=int, default=5, help="frames per decoder step for the per-chunk figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    utterances = an4_eval_split(args.an4, args.split)
    model = load_model(args.model)
    search = beam_search_for(model, args.lm, args.lexicon, beam_size_token=args.beam_size_token)
    if search is None:
        raise SystemExit(f"{args.model}: no tuned LM; pass --lm ARPA")
    waves = load_waves(utterances)
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    log_probs = emissions_in_order(model, waves)
    references = [u.text for u in utterances]
    decoding = {k: v for k, v in search.config.to_dict().items() if k != "nbest"}
    decoding["beam_size_token"] = search.options.beam_size_token  # the number used, where the setting leaves it to the search
    report = {"model": args.model, "split": args.split, "decoding": decoding, "threads": args.threads}
    for name, decoder in (("greedy", None), ("beam", search)):
        started = time.perf_counter()
        texts = [decode(model, lp, decoder).text for lp in log_probs]
        seconds = time.perf_counter() - started
        wer, cer = error_rates(references, texts)
        report[name] = {f"{args.split}_wer": round(wer, 2), f"{args.split}_cer": round(cer, 2), "decode_rtf": round(seconds / audio_seconds, 5)}
        report[name]["us_per_chunk"] = round(chunked_step_seconds(model, log_probs, decoder, args.chunk_frames) * 1e6, 1)
    report["chunk_frames"] = args.chunk_frames
    report["machine"] = machine.describe()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
