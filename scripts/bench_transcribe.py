"""Throughput of `speechrnn transcribe` on AN4 test: audio seconds per wall second.

Usage:
    .venv/bin/python scripts/bench_transcribe.py [--an4 ../shared/data/an4] [--model offline] [--threads 2] [--repeat 3] [--int8 | --float32-kernels] [--profile N]
        [--joined-minutes M] [--streamed-seconds S]

Times what `speechrnn transcribe --format jsonl` does after the interpreter has started and
imported speechrnn: loading the model, reading and resampling every file, features, the model,
greedy decoding and writing the JSON lines (to /dev/null). Prints the best of --repeat runs,
and the WER/CER of the transcripts (so a faster variant such as --int8 shows what it costs).
A model file saved in half precision (the bundled offline model) runs its RNN with float16-weight
kernels, as `speechrnn transcribe` does; --float32-kernels times the float32 ones instead.
``cpu_s`` is the process's CPU time (all threads) in the fastest run. --profile N runs once
more under cProfile (the main thread: the decoding, and the wait for the batches the worker
threads compute) and prints its N most costly functions by own time to stderr.
``--joined-minutes M`` (session 65) transcribes one recording instead: the test utterances
joined end to end, over again until M minutes (a 16-bit WAV in a temporary folder, its
reference their transcripts joined), as a user's long file; ``peak_rss_mb`` is the process's
peak resident memory (model loading and the earlier runs included), which for a long file
shows what reading it costs. ``--streamed-seconds S`` sets the length over which a
unidirectional model reads a recording as a stream of chunks (speechrnn.transcribe.STREAMED_SECONDS;
1e9 reads every recording in one pass), to compare the two readings.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import pstats
import resource
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from speechrnn import machine
from speechrnn.audio import load_audio
from speechrnn.data import DEFAULT_AN4, an4_utterances
from speechrnn.decoding import beam_search_for
from speechrnn.evaluate import error_rates
from speechrnn.model import half_weight_rnn, load_model
from speechrnn.output import render
from speechrnn.transcribe import BATCH_SIZE, STREAMED_SECONDS, transcribe_files


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def joined_recording(utterances, minutes: float, folder: str) -> tuple[list[str], list[str]]:
    """One 16 kHz WAV in ``folder`` of ``utterances`` joined end to end, over again until it is
    ``minutes`` long (cut there, at the end of an utterance), and its reference."""
    waves, texts, total = [], [], 0
    while total < minutes * 60 * 16000:
        for u in utterances:
            waves.append(load_audio(u.audio))
            texts.append(u.text)
            total += waves[-1].shape[0]
            if total >= minutes * 60 * 16000:
                break
    path = os.path.join(folder, "joined.wav")
    sf.write(path, np.concatenate(waves), 16000, subtype="PCM_16")
    return [path], [" ".join(texts)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", default="offline")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="as `speechrnn transcribe --batch-size` (default: %(default)s)")
    parser.add_argument(
        "--int8", action="store_true",
        help="run the GRU in int8 (PyTorch's dynamic quantisation): what it would give; speechrnn transcribe does not use it",
    )
    parser.add_argument("--float32-kernels", action="store_true", help="run a half-precision file's RNN with float32 kernels (what speechrnn did before)")
    parser.add_argument("--lm", default="default", help="as `speechrnn transcribe --lm`: 'default' (the model's tuned LM), 'none' (greedy) or an ARPA path")
    parser.add_argument("--rescore", default="default", help="with the LM: 'default' (the model's tuned second pass, if any), 'none' (the first pass alone) or a model that re-ranks the n best")
    parser.add_argument("--joined-minutes", type=float, default=0, metavar="M", help="one recording of the test utterances joined to M minutes instead of the 130 files")
    parser.add_argument("--streamed-seconds", type=float, default=STREAMED_SECONDS, metavar="S", help="a unidirectional model streams recordings longer than this (default: %(default)s)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="after the timed runs, one more under cProfile: its N costliest functions to stderr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    importlib.import_module("speechrnn.transcribe").STREAMED_SECONDS = args.streamed_seconds  # (the module: the package's `transcribe` is a function)
    utterances = an4_utterances(args.an4, "test")
    paths = [u.audio for u in utterances]
    references = [u.text for u in utterances]
    folder = tempfile.TemporaryDirectory()
    if args.joined_minutes:
        paths, references = joined_recording(utterances, args.joined_minutes, folder.name)

    def run(sink):
        model = load_model(args.model)
        model.half_weight_kernels = not args.float32_kernels
        if args.int8:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.GRU}, dtype=torch.qint8)
        search = beam_search_for(model, args.lm, rescore=args.rescore)  # LM (and rescoring model) loading counts, as model loading does
        results = transcribe_files(model, paths, on_result=lambda r: sink.write(render(r, "jsonl")), search=search, batch_size=args.batch_size)
        return model, search, results

    timings = []  # (wall s, CPU s) of each run
    with open(os.devnull, "w") as sink:
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), cpu_seconds()
            model, search, results = run(sink)
            timings.append((time.perf_counter() - started, cpu_seconds() - cpu_started))
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run, sink)
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    failed = [r.audio for r in results if r.error]
    if failed:
        sys.exit(f"{len(failed)} files failed: {failed[:3]}")
    audio_seconds = sum(r.duration for r in results)
    rnn_kind = "int8" if args.int8 else "float16 weights" if half_weight_rnn(model) is not None else "float32"
    wer, cer = error_rates(references, [r.hypothesis.text for r in results])
    folder.cleanup()
    best, best_cpu = min(timings)
    print(json.dumps({
        "files": len(paths),
        "audio_s": round(audio_seconds, 1),
        "wall_s": round(best, 3),
        "cpu_s": round(best_cpu, 3),
        "x_real_time": round(audio_seconds / best, 1),
        "test_wer": round(wer, 2),
        "test_cer": round(cer, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model": args.model,
        "lm": args.lm,
        "rescore": search.rescorer.config.model if search is not None and search.rescorer is not None else None,
        "rnn": rnn_kind,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "streamed_seconds": args.streamed_seconds,
        "machine": machine.describe(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
