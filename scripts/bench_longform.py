"""Long recordings: WER of models on AN4 utterances joined into recordings of several utterances.

Usage:
    .venv/bin/python scripts/bench_longform.py [--model offline streaming] [--split dev|test]
        [--group 1 2 5 20] [--max-segment 0 20] [--lm none|default] [--live-rate 16000] [--gap 0]
        [--an4 ../shared/data/an4] [--threads 2]

AN4 utterances are short commands (about 3 s). A user's recording is often many sentences: here
each recording is ``--group`` consecutive utterances of the split (AN4 lists a speaker's
utterances together, so mostly one speaker per recording) joined end to end, with the pauses
their own files hold around the speech; its reference is their transcripts joined. Each
recording is read by `speechrnn.transcribe.recognize` as `speechrnn transcribe` reads a file,
once for each ``--max-segment`` (0: read whole; N: recordings over N seconds cut at pauses into
pieces of at most N seconds; ``default``: the library's default). Streaming models always read
a recording as one utterance (``speechrnn transcribe --model streaming`` must match ``speechrnn
live --no-endpoint``; since session 65 one over 5 minutes as a stream of 10 s chunks, which gives the
same frames), so they get the row ``whole`` only;
for them the row ``live`` also feeds each recording through a `StreamingRecognizer` with its
default endpointing, in 100 ms chunks, and joins its finals: what ``speechrnn live`` shows;
``--live-rate 44100`` first resamples each recording to that rate, as a microphone delivering
44.1 kHz would, so the stream's own resampler turns it back. ``--gap S`` (session 61) puts S
seconds of faint white noise (-60 dB full scale, seeded) before each utterance: a talker's pauses
between sentences, which a live stream's endpointing sees as silence.
"""
from __future__ import annotations

import argparse
import json
import time

import soxr
import torch

from speechrnn import machine
from speechrnn.audio import load_audio
from speechrnn.data import DEFAULT_AN4, an4_eval_split, with_lead_in
from speechrnn.decoding import beam_search_for
from speechrnn.evaluate import error_rates
from speechrnn.model import load_model
from speechrnn.segment import SegmentConfig
from speechrnn.streaming import StreamingRecognizer
from speechrnn.transcribe import recognize


GAP_LEVEL = 1e-3  # RMS of --gap's noise: -60 dB full scale


def live_text(model, search, recording: torch.Tensor, rate: int = 16000) -> str:
    """The finals of a stream with the default endpointing, fed 100 ms chunks at ``rate``, joined."""
    recognizer = StreamingRecognizer(model, lm=search)
    samples = recording.numpy() if rate == 16000 else soxr.resample(recording.numpy(), 16000, rate)
    finals, chunk = [], rate // 10
    for start in range(0, len(samples), chunk):
        finals += [r.text for r in recognizer.accept_waveform(samples[start : start + chunk], rate) if r.type == "final"]
    finals.append(recognizer.finalize().text)
    return " ".join(t for t in finals if t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", nargs="+", default=["offline", "streaming"])
    parser.add_argument("--split", choices=["test", "dev"], default="test", help="AN4 test, or the recipe's dev split of AN4 train")
    parser.add_argument("--group", type=int, nargs="+", default=[1, 2, 5, 20], help="utterances per recording")
    parser.add_argument("--max-segment", nargs="+", default=["0", "default"], help="seconds ('default': the library's, 0: read whole)")
    parser.add_argument("--lm", default="none", help="'none' (greedy), 'default' (the model's tuned LM) or an ARPA path")
    parser.add_argument("--rescore", default="default", help="with the LM: 'default' (the model's tuned second pass, if any), 'none' (the first pass alone) or a model that re-ranks the n best")
    parser.add_argument("--live-rate", type=int, default=16000, help="the live row's input rate in Hz (default: %(default)s)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of -60 dBFS white noise before each utterance (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    utterances = an4_eval_split(args.an4, args.split)
    waves = [torch.from_numpy(load_audio(u.audio)) for u in utterances]
    if args.gap > 0:
        draw = torch.Generator().manual_seed(0)
        waves = [with_lead_in(w, args.gap, GAP_LEVEL, draw) for w in waves]
    report = {}
    for name in args.model:
        model = load_model(name)
        search = beam_search_for(model, args.lm, rescore=args.rescore)
        report[name] = {}
        for group in args.group:
            starts = range(0, len(waves), group)
            recordings = [torch.cat(waves[s : s + group]) for s in starts]
            references = [" ".join(u.text for u in utterances[s : s + group]) for s in starts]
            seconds = [r.shape[0] / 16000 for r in recordings]
            row = {"recordings": len(recordings), "mean_s": round(sum(seconds) / len(seconds), 1), "max_s": round(max(seconds), 1)}
            for limit in args.max_segment if model.config.bidirectional else ["0"]:
                max_segment = SegmentConfig.max_seconds if limit == "default" else float(limit)
                started = time.perf_counter()
                hyps = recognize(model, recordings, search=search, max_segment=max_segment)
                wall = time.perf_counter() - started
                wer, cer = error_rates(references, [h.text for h in hyps])
                key = "whole" if max_segment == 0 else f"pieces <= {max_segment:g} s"
                row[key] = {"wer": round(wer, 2), "cer": round(cer, 2), "x_real_time": round(sum(seconds) / wall, 1)}
            if not model.config.bidirectional:
                started = time.perf_counter()
                texts = [live_text(model, search, recording, args.live_rate) for recording in recordings]
                wall = time.perf_counter() - started
                wer, cer = error_rates(references, texts)
                row["live"] = {"wer": round(wer, 2), "cer": round(cer, 2), "x_real_time": round(sum(seconds) / wall, 1)}
            report[name][f"{group} per recording"] = row
    print(json.dumps({
        "split": args.split,
        "lm": args.lm,
        "gap_s": args.gap,
        "live_rate": args.live_rate,
        "results": report,
        "machine": machine.describe(),
        "threads": args.threads,
        "torch": torch.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
