"""Streaming figures on AN4 test (or the dev split, --split dev): WER, real-time factor, word latency, partial stability,
and memory and per-chunk time over a long stream.

Usage:
    .venv/bin/python scripts/bench_streaming.py [--model streaming] [--chunk-ms 100] [--threads 1]
        [--reference align|offline|MODEL] [--long-minutes 60] [--lm default|none|ARPA] [--an4 ../shared/data/an4]
        [--no-tentative] [--rescore-partials [--rescore-growth 0.25]] [--split test|dev] [--long-no-endpoint] [--repeat 1] [--beam-size N] [--late-ms 300] [--float32-kernels]

- WER/CER: final text of each utterance streamed in chunks (endpointing off) against AN4 test (or dev).
- RTF: recognizer compute time / audio time (features, model, decoding), one thread; with
  --repeat N, the fastest of N passes (the others are listed).
- Latency: real-time feeding is simulated: chunk i is available at its end time in the audio,
  its result after that plus the measured compute time. A word's latency is the time of the
  first partial that holds it (and every word before it, as in the final) minus the word's end
  in the audio. With --reference align (the default) the ends come from a forced alignment of
  the AN4 transcript (PocketSphinx's HMM aligner and its en-us acoustic model), each word's end
  moved back to its last 10 ms frame within 25 dB of the utterance's speech level (the aligner
  can give a word the quiet after it). With a model name or path they are that model's word
  times in greedy decoding: where the last letter's CTC spike is, often mid-sound (the offline
  model's spikes precede the aligned ends by 130 ms median on AN4 test, 190 ms for spelled
  letters: `offline_spikes_before_aligned_ends_ms`); the figures against the offline model's
  spikes are reported beside the aligned ones.
  Words later than --late-ms are broken down: how many were shown wrong first (an earlier
  partial had another word in their place: the LM respelling), and which words they are.
- Stability: share of partials whose text is a prefix of the utterance's final text; of the
  others, the share of all partials whose words before their last are not the final's first
  words (revised earlier than their last, still growing word).
- Long stream: test utterances with silences between them, looped to --long-minutes, with
  endpointing on (or off: --long-no-endpoint); reports RSS and the mean per-chunk time in the
  first and last tenths and in each whole pass over the test set (the same audio each pass).
"""
from __future__ import annotations

import argparse
import collections
import difflib
import json
import resource
import statistics
import time
from typing import NamedTuple

import numpy as np
import torch

from speechrnn import machine
from speechrnn.data import DEFAULT_AN4, an4_dev_split, an4_utterances
from speechrnn.decoding import beam_search_for
from speechrnn.audio import load_audio
from speechrnn.evaluate import error_rates
from speechrnn.model import load_model
from speechrnn.numpy_model import numpy_model
from speechrnn.rescoring import RESCORE_GROWTH
from speechrnn.streaming import EndpointConfig, StreamingRecognizer, set_threads
from speechrnn.transcribe import recognize


def stream_utterance(recognizer: StreamingRecognizer, samples: np.ndarray, step: int):
    """Feed one utterance in chunks; returns per-chunk (available_at, done_at, words) and the final."""
    timeline, compute = [], 0.0
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step]
        t0 = time.perf_counter()
        partial = recognizer.accept_waveform(chunk)[-1]
        spent = time.perf_counter() - t0
        compute += spent
        available = (start + len(chunk)) / 16000
        timeline.append((available, available + spent, partial))
    t0 = time.perf_counter()
    final = recognizer.finalize()
    compute += time.perf_counter() - t0
    return timeline, final, compute


def revised_before_last_word(partial: str, final: str) -> bool:
    """Whether a partial's words before its last are not the final's first words: the final
    changed a word the partial had finished, not only the one it was still growing."""
    words = partial.split()[:-1]
    return words != final.split()[: len(words)]


class Word(NamedTuple):
    word: str
    end: float  # seconds from the utterance's start


def aligned_words(wave: np.ndarray, transcript: str, floor_db: float = 25.0) -> list[Word]:
    """The transcript's words and their ends in ``wave`` (16 kHz) by HMM forced alignment, each
    end moved back to the segment's last 10 ms frame within ``floor_db`` of the utterance's
    speech level (its 90th-percentile frame power); [] if the alignment fails.

    PocketSphinx does the alignment (no forced aligner comes with torchaudio without a
    downloaded model, and a CTC model's own spikes mark where it fires, not where words end).
    A new decoder per utterance: one decoder's alignments depend on the utterances before.
    """
    from pocketsphinx import Decoder

    aligner = Decoder(lm=None, cmn="batch", loglevel="FATAL")
    pcm = (np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16)
    aligner.set_align_text(transcript)
    aligner.start_utt()
    aligner.process_raw(pcm.tobytes(), full_utt=True)
    aligner.end_utt()
    hop = 160  # PocketSphinx's 10 ms frames
    frames = pcm[: len(pcm) // hop * hop].reshape(-1, hop).astype(np.float64)
    power = (frames**2).mean(axis=1)
    level = 10 * np.log10(power + 1e-3)
    loud = level >= np.percentile(level, 90) - floor_db
    words = []
    for segment in aligner.seg() or ():  # None where the alignment failed
        if segment.word in ("<s>", "</s>", "<sil>"):
            continue
        frames = np.nonzero(loud[segment.start_frame : segment.end_frame + 1])[0]
        last = segment.start_frame + (frames[-1] if len(frames) else segment.end_frame - segment.start_frame)
        words.append(Word(segment.word.split("(")[0], (last + 1) * hop / 16000))  # "a(2)": a second pronunciation
    return words if [w.word for w in words] == transcript.split() else []


def require_aligner() -> None:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise SystemExit("--reference align needs pocketsphinx (pip install pocketsphinx; scripts/setup.sh installs it), or pass --reference offline")


class WordLatency(NamedTuple):
    word: str
    seconds: float
    revised: bool  # an earlier partial showed another word in its place


def word_latencies(timeline, final, reference_words) -> list[WordLatency]:
    """Latency of each final word that the reference also has (matched in order)."""
    final_words = [w.word for w in final.words]
    matcher = difflib.SequenceMatcher(a=final_words, b=[w.word for w in reference_words], autojunk=False)
    latencies = []
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            k, ref = block.a + offset, reference_words[block.b + offset]
            revised = False
            for _, done_at, partial in timeline:
                shown = [w.word for w in partial.words[: k + 1]]
                if len(shown) > k and shown == final_words[: k + 1]:
                    latencies.append(WordLatency(final_words[k], done_at - ref.end, revised))
                    break
                revised |= len(shown) > k and shown[:k] == final_words[:k]
            else:  # only the final has it
                latencies.append(WordLatency(final_words[k], timeline[-1][1] - ref.end if timeline else 0.0, revised))
    return latencies


def late_words(latencies: list[WordLatency], late_ms: float) -> dict:
    """What the words later than ``late_ms`` are: how many were revised first, and the commonest."""
    late = [w for w in latencies if 1000 * w.seconds > late_ms]
    return {
        "over_ms": late_ms,
        "count": len(late),
        "share": round(len(late) / max(1, len(latencies)), 4),
        "shown_wrong_first": sum(w.revised for w in late),
        "single_letters": sum(len(w.word) == 1 for w in late),
        "commonest": collections.Counter(w.word for w in late).most_common(8),
    }


def spike_leads(spikes, references) -> dict:
    """How long before the aligned word ends the offline model's word times are (its CTC spikes),
    over the words the two share in order in each utterance: the median, and for single letters."""
    leads, letters = [], []
    for spiked, aligned in zip(spikes, references):
        matcher = difflib.SequenceMatcher(a=[w.word for w in aligned], b=[w.word for w in spiked], autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                word = aligned[block.a + k]
                leads.append(word.end - spiked[block.b + k].end)
                if len(word.word) == 1:
                    letters.append(leads[-1])
    return {"median": round(1000 * statistics.median(leads), 1), "single_letters_median": round(1000 * statistics.median(letters), 1), "words": len(leads)}


def long_stream(recognizer: StreamingRecognizer, waves: list[np.ndarray], minutes: float, step: int) -> dict:
    silence = np.zeros(16000, dtype=np.float32)
    chunk_times, finals = [], 0
    pass_times: list[list[float]] = []  # per pass over the test set: the same audio each time
    total = int(minutes * 60 * 16000)
    fed, i = 0, 0
    rss_start = None
    while fed < total:
        audio = np.concatenate([waves[i % len(waves)], silence])
        if i % len(waves) == 0:
            pass_times.append([])
        i += 1
        for start in range(0, len(audio), step):
            t0 = time.perf_counter()
            events = recognizer.accept_waveform(audio[start : start + step])
            chunk_times.append(time.perf_counter() - t0)
            pass_times[-1].append(chunk_times[-1])
            finals += sum(e.type == "final" for e in events)
        fed += len(audio)
        if rss_start is None and fed > total * 0.1:
            rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    recognizer.finalize()
    tenth = max(1, len(chunk_times) // 10)
    return {
        "minutes": round(fed / 16000 / 60, 1),
        "finals": finals,
        "chunk_ms_first_tenth": round(1000 * statistics.mean(chunk_times[:tenth]), 3),
        "chunk_ms_last_tenth": round(1000 * statistics.mean(chunk_times[-tenth:]), 3),
        # The tenths hold different utterances; whole passes over the test set compare like with like.
        "chunk_ms_per_whole_pass": [round(1000 * statistics.mean(times), 3) for times in pass_times[:-1] or pass_times],
        "max_rss_mb_at_10pct": round(rss_start or 0, 1),
        "max_rss_mb_at_end": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", default="streaming")
    parser.add_argument("--reference", default="align", help="where words end: 'align' (forced alignment of the transcript) or a model whose word times are used (default: %(default)s)")
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--long-minutes", type=float, default=60.0, help="0 skips the long-stream check")
    parser.add_argument("--lm", default="default", help="LM for the streaming beam search: 'default' (the model's tuned LM), 'none' (greedy) or an ARPA path")
    parser.add_argument("--rescore", default="default", help="with the LM: 'default' (the model's tuned second pass, if any), 'none' (the first pass alone) or a model that re-ranks the n best")
    parser.add_argument("--rescore-weight", type=float, default=None, help="weight of the --rescore model (default: the tuned value, else 0.25)")
    parser.add_argument("--rescore-partials", action="store_true", help="with a second pass, partials are re-ranked by it too")
    parser.add_argument("--rescore-growth", type=float, default=RESCORE_GROWTH, help="with --rescore-partials: re-rank once the utterance grew by this share since the last re-ranking; 0: every partial (default: %(default)s)")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="AN4 test, or the dev split carved from train (for tuning)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam size of the LM search (default: the model's tuned one)")
    parser.add_argument("--long-no-endpoint", action="store_true", help="the long stream is one utterance (endpointing off)")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the test set; RTF, latency and stability are the fastest pass's")
    parser.add_argument("--late-ms", type=float, default=300.0, help="words later than this are broken down (default: %(default)s)")
    parser.add_argument("--float32-kernels", action="store_true", help="a half-precision model file computes with float32 kernels (what speechrnn did before)")
    parser.add_argument("--no-tentative", action="store_true", help="partials leave out the frames still waiting for look-ahead")
    args = parser.parse_args()
    set_threads(args.threads)  # torch's and NumPy's (the stream's GRU steps)

    utterances = an4_utterances(args.an4, "test") if args.split == "test" else an4_dev_split(args.an4)
    waves = [load_audio(u.audio) for u in utterances]
    model = load_model(args.model)
    model.half_weight_kernels = not args.float32_kernels
    # Word ends: from the forced alignment (or a model's word times), and from the offline
    # model's CTC spikes, the reference of earlier sessions' figures.
    tensors = [torch.from_numpy(w) for w in waves]
    spikes = [h.words for h in recognize(load_model("offline"), tensors)]
    if args.reference == "align":
        require_aligner()
        references = [aligned_words(wave, u.text) for wave, u in zip(waves, utterances)]
    elif args.reference == "offline":
        references = spikes
    else:
        references = [h.words for h in recognize(load_model(args.reference), tensors)]
    step = 16000 * args.chunk_ms // 1000

    search = beam_search_for(model, args.lm, rescore=args.rescore, rescore_weight=args.rescore_weight, beam_size=args.beam_size)
    recognizer = StreamingRecognizer(model, endpoint=None, lm=search, tentative=not args.no_tentative, rescore_partials=args.rescore_partials, rescore_growth=args.rescore_growth)
    passes = []  # (rtf, texts, latencies, spike_latencies, partials, stable, revised early) of each pass over the test set
    for _ in range(args.repeat):
        texts, latencies, spike_latencies, compute, audio_seconds, partials, stable, early = [], [], [], 0.0, 0.0, 0, 0, 0
        for wave, reference, spiked in zip(waves, references, spikes):
            timeline, final, spent = stream_utterance(recognizer, wave, step)
            texts.append(final.text)
            compute += spent
            audio_seconds += len(wave) / 16000
            latencies += word_latencies(timeline, final, reference)
            spike_latencies += word_latencies(timeline, final, spiked)
            for _, _, partial in timeline:
                partials += 1
                stable += final.text.startswith(partial.text)
                early += revised_before_last_word(partial.text, final.text)
        passes.append((compute / audio_seconds, texts, latencies, spike_latencies, partials, stable, early))
    # The fastest pass: this machine's speed drifts by tens of percent within minutes, and the
    # transcripts are the same in every pass (latencies differ only by the compute time in them).
    rtf, texts, latencies, spike_latencies, partials, stable, early = min(passes, key=lambda p: p[0])
    wer, cer = error_rates([u.text for u in utterances], texts)
    report = {
        "model": args.model,
        "chunk_ms": args.chunk_ms,
        "decoding": "greedy" if search is None else {k: v for k, v in search.config.to_dict().items() if k != "nbest"},
        "rescore": search.rescorer.config.to_dict() if search is not None and search.rescorer is not None else None,
        "threads": args.threads,
        "weights": "float16 kernels" if numpy_model(model) is not None and numpy_model(model).half else "float32",
        "tentative_partials": not args.no_tentative,
        "rescored_partials": args.rescore_partials and search is not None and search.rescorer is not None,
        **({"rescore_growth": args.rescore_growth} if args.rescore_partials else {}),
        "split": args.split,
        f"{args.split}_wer": round(wer, 2),
        f"{args.split}_cer": round(cer, 2),
        "rtf": round(rtf, 4),
        "rtf_per_pass": [round(p[0], 4) for p in passes],
        "latency_ms_median": round(1000 * statistics.median(w.seconds for w in latencies), 1),
        "latency_ms_p95": round(1000 * float(np.percentile([w.seconds for w in latencies], 95)), 1),
        "words_timed": len(latencies),
        "word_ends": "forced alignment" if args.reference == "align" else f"word times of {args.reference}",
        "unaligned_utterances": sum(not r for r in references),
        "latency_ms_vs_offline_spikes": {
            "median": round(1000 * statistics.median(w.seconds for w in spike_latencies), 1),
            "p95": round(1000 * float(np.percentile([w.seconds for w in spike_latencies], 95)), 1),
        },
        **({"offline_spikes_before_aligned_ends_ms": spike_leads(spikes, references)} if args.reference == "align" else {}),
        "late_words": late_words(latencies, args.late_ms),
        "partials_prefix_of_final": round(stable / max(1, partials), 4),
        "partials_revised_before_last_word": round(early / max(1, partials), 4),
        "lookahead_ms": round(1000 * model.config.latency_frames * model.config.frame_shift, 1),
        "machine": machine.describe(),
        "torch": torch.__version__,
    }
    if args.long_minutes > 0:
        endpoint = None if args.long_no_endpoint else EndpointConfig()
        recognizer = StreamingRecognizer(model, endpoint=endpoint, lm=search, tentative=not args.no_tentative, rescore_partials=args.rescore_partials, rescore_growth=args.rescore_growth)
        report["long_stream"] = {"endpointing": endpoint is not None, **long_stream(recognizer, waves, args.long_minutes, step)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
