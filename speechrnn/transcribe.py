"""Batched whole-utterance recognition of arrays and files."""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from . import audio
from .audio import HOP_LENGTH, AudioError, load_audio
from .decoding import BeamSearch, Hypothesis, new_decoder
from .data import pad_waves
from .model import SpeechModel
from .rescoring import final_hypothesis
from .segment import SegmentConfig, split_at_pauses, voiced_blocks

BATCH_SIZE = 16  # utterances per forward pass in whole-file recognition
# A unidirectional model reads a recording longer than this (seconds) as a stream of chunks of
# STREAMED_CHUNK seconds (chunk-exact, so the same frames as whole), its memory then bounded by
# the chunk, not the recording: a whole pass held about 27 MB more per minute of audio, but
# runs about 1.6x faster (10 minutes: 970.2 MB and 4.66 s whole, 700.3 MB and 7.58 s as a
# stream; `scripts/bench_transcribe.py --model streaming --lm none --repeat 2 --joined-minutes
# 10 [--streamed-seconds 1e9]`, session 65, AMD EPYC, 2 threads), so only recordings this long
# are streamed.
STREAMED_SECONDS = 300.0
STREAMED_CHUNK = 10.0


@torch.inference_mode()
def _batch_emissions(model: SpeechModel, waves: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    sample_rate = model.config.frontend.sample_rate
    if not model.config.bidirectional and max(w.shape[0] for w in waves) > STREAMED_SECONDS * sample_rate:
        return [_streamed_emissions(model, wave.to(device), round(STREAMED_CHUNK * sample_rate)) for wave in waves]
    padded, lens = pad_waves(waves)
    feats, feat_lens = model.features(padded.to(device), lens.to(device))
    log_probs, out_lens = model(feats, feat_lens)
    log_probs = log_probs.cpu()
    return [log_probs[row, : int(out_lens[row])] for row in range(len(waves))]


def _streamed_emissions(model: SpeechModel, wave: torch.Tensor, chunk: int) -> torch.Tensor:
    """One ``(N,)`` waveform's ``(U, V)`` log-probabilities from a unidirectional ``model``, read
    ``chunk`` samples at a time as a stream (:mod:`speechrnn.streaming`)."""
    from .streaming import extract_chunk, flush, forward_chunk, init_state

    state, parts = init_state(model), []
    for start in range(0, wave.shape[0], chunk):
        feats, state = extract_chunk(model, wave[None, start : start + chunk], state)
        log_probs, state = forward_chunk(model, feats, state, tentative=False)
        parts.append(log_probs[0])
    parts.append(flush(model, state)[0][0])
    return torch.cat(parts).cpu()


def emissions(
    model: SpeechModel, waves: Sequence[torch.Tensor], batch_size: int = BATCH_SIZE, workers: int | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(index, (U, V) CTC log-probabilities)`` of each ``(N,)`` 16 kHz waveform, computed in
    batches of similar length, the longest batch first (in that order, not the input order); the
    log-probabilities of a waveform do not depend on what it was batched with.

    On the CPU, ``workers`` batches (default: torch's thread count) run at once, one thread
    each: a GRU's per-step matrix products are too small to share between threads well, so
    whole batches side by side use the cores better.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be 1 or more, got {batch_size}")
    device = next(model.parameters()).device
    order = sorted(range(len(waves)), key=lambda i: waves[i].shape[0])
    # Longest first: with several workers the short batches at the end even out their finishing times.
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)][::-1]
    workers = min(len(batches), torch.get_num_threads() if workers is None else workers) if device.type == "cpu" else 1

    def run(rows: list[int]) -> list[torch.Tensor]:
        return _batch_emissions(model, [waves[i] for i in rows], device)

    if workers <= 1:
        for rows in batches:
            yield from zip(rows, run(rows))
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per worker; restored below
    try:
        with ThreadPoolExecutor(workers) as pool:
            for rows, outputs in zip(batches, pool.map(run, batches)):
                yield from zip(rows, outputs)
    finally:
        torch.set_num_threads(threads)


def emissions_in_order(model: SpeechModel, waves: Sequence[torch.Tensor], batch_size: int = BATCH_SIZE) -> list[torch.Tensor]:
    """:func:`emissions` of ``waves`` as a list in the input order (all held at once: for dev and
    test sets that are read several times, as tuning and the benchmarks do)."""
    stored = dict(emissions(model, waves, batch_size))
    return [stored[i] for i in range(len(waves))]


def decode(
    model: SpeechModel, log_probs: torch.Tensor, search: BeamSearch | None = None, time_offset: float = 0.0, partner_log_probs: torch.Tensor | None = None
) -> Hypothesis:
    """Decode one utterance's ``(U, V)`` log-probabilities, greedily or with ``search``; times
    are counted from ``time_offset`` seconds. With ``partner_log_probs`` (the search's rescoring
    model's, for the same audio) the n best are re-ranked (:mod:`speechrnn.rescoring`)."""
    decoder = new_decoder(model, search, time_offset)
    decoder.step(log_probs)
    decoder.finish()
    return final_hypothesis(search, decoder, None if partner_log_probs is None else lambda: partner_log_probs)


def segment_config(model: SpeechModel, max_seconds: float | None = None) -> SegmentConfig | None:
    """How :func:`recognize` cuts long recordings for ``model``: pieces of at most
    ``max_seconds`` (None: the default, 0: never cut). A streaming model reads every recording
    whole, as ``speechrnn live --no-endpoint`` does, whose transcript it must equal."""
    if max_seconds == 0 or not model.config.bidirectional:
        return None
    config = SegmentConfig(sample_rate=model.config.frontend.sample_rate, frame_samples=model.config.frame_samples)
    return config if max_seconds is None else dataclasses.replace(config, max_seconds=max_seconds)


def join_hypotheses(model: SpeechModel, pieces: Sequence[tuple[int, Hypothesis]]) -> Hypothesis:
    """One hypothesis for a recording read in pieces: ``(start sample, hypothesis)`` in order,
    each hypothesis timed from the recording's start. Frames are renumbered from the recording's
    start and a word boundary joins the pieces' words. N-best lists do not carry over: the
    runners-up of one piece are not transcripts of the recording."""
    if len(pieces) == 1:
        return pieces[0][1]
    texts, tokens, frames, words, score = [], [], [], [], 0.0
    for start, hyp in pieces:
        score += hyp.score
        if not hyp.text:
            continue
        offset = start // model.config.frame_samples
        if tokens and model.tokenizer.space is not None:
            tokens.append(model.tokenizer.space)
            frames.append(hyp.frames[0] + offset)
        texts.append(hyp.text)
        tokens.extend(hyp.tokens)
        frames.extend(f + offset for f in hyp.frames)
        words.extend(hyp.words)
    return Hypothesis(" ".join(texts), tokens, frames, score, words)


def recognize(
    model: SpeechModel,
    waves: Sequence[torch.Tensor],
    batch_size: int = BATCH_SIZE,
    search: BeamSearch | None = None,
    max_segment: float | None = None,
    remove_dc: bool = False,
    on_recognized: Callable[[int], None] | None = None,
    remove_hum: float | None = None,
) -> list[Hypothesis]:
    """Decode many ``(N,)`` 16 kHz waveforms (greedy, or with ``search``), batched by similar
    length; returns hypotheses in the order of ``waves``. ``remove_dc``, ``remove_hum``: each
    waveform first goes through a fresh :class:`speechrnn.audio.InputFilter` of these options
    (its DC offset out; mains hum at ``remove_hum`` Hz out), as a stream's chunks go through
    one in a :class:`~speechrnn.streaming.StreamingRecognizer` made with them.
    ``on_recognized(k)`` is called as soon as recording ``k`` is decoded (all its pieces), in
    the order they finish (a progress bar's step).

    A whole-input model reads a recording longer than ``max_segment`` seconds (None: the
    default of :class:`SegmentConfig`; 0: never) in pieces cut at its longest pauses
    (:mod:`speechrnn.segment`), their transcripts joined; shorter ones are read whole.
    """
    segmenting = segment_config(model, max_segment)
    sample_rate = model.config.frontend.sample_rate
    if remove_dc or remove_hum is not None:
        waves = [torch.from_numpy(audio.InputFilter(remove_dc, remove_hum, sample_rate)(wave.numpy())) for wave in waves]
    pieces: list[torch.Tensor] = []
    owners: list[tuple[int, int]] = []  # (recording, start sample) of each piece
    for k, wave in enumerate(waves):
        spans = split_at_pauses(wave.numpy(), segmenting) if segmenting is not None else [(0, wave.shape[0])]
        for start, end in spans:
            pieces.append(wave if len(spans) == 1 else wave[start:end])
            owners.append((k, start))
    rescorer = search.rescorer if search is not None else None
    partner = rescorer.partner_log_probs(pieces, batch_size) if rescorer is not None else {}  # piece -> log-probabilities
    parts: list[list[tuple[int, Hypothesis]]] = [[] for _ in waves]
    pieces_left = [0] * len(waves)
    for k, _ in owners:
        pieces_left[k] += 1
    for i, log_probs in emissions(model, pieces, batch_size):
        k, start = owners[i]
        hyp = decode(model, log_probs, search, time_offset=start / sample_rate, partner_log_probs=partner.get(i))
        if model.config.bidirectional:
            hyp = starts_in_speech(hyp, pieces[i].numpy(), start / sample_rate, model.config.frame_shift, sample_rate)
        parts[k].append((start, hyp))
        pieces_left[k] -= 1
        if on_recognized is not None and not pieces_left[k]:
            on_recognized(k)
    return [join_hypotheses(model, sorted(p, key=lambda part: part[0])) for p in parts]


def starts_in_speech(hyp: Hypothesis, wave: np.ndarray, offset: float, frame_shift: float, sample_rate: int) -> Hypothesis:
    """``hyp`` with each word that starts in a pause starting where its speech does.

    A bidirectional model sees the whole input and may emit a word's first letter at its very
    first frame, seconds before the word is spoken, when the input starts with silence (each
    piece of a long recording does: it is cut in a pause), so subtitles would show the word
    early. A word's start is moved to the output frame of its first voiced 10 ms block
    (:func:`speechrnn.segment.voiced_blocks`); a word with none before its end keeps its start.
    ``wave`` is the decoded input, whose first sample is ``offset`` seconds into the recording."""
    voiced = voiced_blocks(wave)
    block = HOP_LENGTH / sample_rate
    words = []
    for w in hyp.words:
        first, last = int((w.start - offset) / block + 1e-6), int((w.end - offset) / block + 1e-6)
        ahead = np.flatnonzero(voiced[first:last])
        if len(ahead) and ahead[0] > 0:
            frame = int((first + ahead[0]) * block / frame_shift + 1e-6)
            w = w._replace(start=round(offset + frame * frame_shift, 3))
        words.append(w)
    return hyp._replace(words=words)


@dataclass
class FileResult:
    audio: str  # the path as given
    duration: float = 0.0
    hypothesis: Hypothesis | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # what the user should know of a file transcribed


AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf", ".sph", ".nist"}


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Files as given; folders replaced by the audio files under them (recursive, sorted).

    A path that does not exist is kept, so that it is reported as an error in its turn.
    """
    expanded = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            expanded.extend(found)
        else:
            expanded.append(path)
    return expanded


def transcribe_files(
    model: SpeechModel,
    paths: Sequence[str],
    batch_size: int = BATCH_SIZE,
    max_batch_seconds: float = 1000.0,
    on_result: Callable[[FileResult], None] | None = None,
    progress: bool = False,
    search: BeamSearch | None = None,
    max_segment: float | None = None,
    remove_dc: bool = False,
    remove_hum: float | None = None,
) -> list[FileResult]:
    """Transcribe audio files; a file that fails gets an error and the rest go on.

    Files are read in groups of up to ``max_batch_seconds`` of audio (64 MB of samples for the
    default; each group ends with workers waiting for the last batch, so fewer groups use the
    cores better), each group run through the model in length-sorted batches and decoded greedily or with ``search``
    (files over ``max_segment`` seconds in pieces, as :func:`recognize` reads them). ``on_result``
    is called for every file in input order, as soon as that file and all before it are done.
    ``remove_dc``, ``remove_hum`` as for :func:`recognize`; a file with what they would take out
    and they do not gets a warning that says so (:func:`speechrnn.audio.input_warnings`: a
    mean sample over :data:`~speechrnn.audio.DC_WARNING`, mains hum at
    :data:`~speechrnn.audio.HUM_WARNING_DB` or louder).

    Returns:
        One :class:`FileResult` per path, in input order.
    """
    from tqdm import tqdm

    results = [FileResult(audio=p) for p in paths]
    bar = tqdm(total=len(paths), unit="file", disable=not progress, leave=False)
    next_to_emit = 0
    group: list[tuple[int, torch.Tensor]] = []
    group_seconds = 0.0

    def flush():
        nonlocal group, group_seconds, next_to_emit
        if group:
            hyps = recognize(
                model, [w for _, w in group], batch_size=batch_size, search=search, max_segment=max_segment, remove_dc=remove_dc, remove_hum=remove_hum,
                on_recognized=lambda k: bar.update(1),  # (file by file, not a group of up to max_batch_seconds at once)
            )
            for (i, _), hyp in zip(group, hyps):
                results[i].hypothesis = hyp
        group, group_seconds = [], 0.0
        while next_to_emit < len(results) and (results[next_to_emit].hypothesis or results[next_to_emit].error):
            if on_result:
                on_result(results[next_to_emit])
            next_to_emit += 1

    sample_rate = model.config.frontend.sample_rate
    for i, path in enumerate(paths):
        try:
            wave = load_audio(path, sample_rate)
        except AudioError as error:
            results[i].error = str(error)
            bar.update(1)
            if not group:
                flush()
            continue
        results[i].duration = round(wave.shape[0] / sample_rate, 3)
        for told in audio.input_warnings(wave, sample_rate, remove_dc, remove_hum).values():
            results[i].warnings.append(f"{audio.STDIN_NAME if path == audio.STDIN else path}: {told}")
        group.append((i, torch.from_numpy(wave)))
        group_seconds += results[i].duration
        if group_seconds >= max_batch_seconds:
            flush()
    flush()
    bar.close()
    return results
