"""Streaming recognition: explicit stream state, chunked model steps, endpointing.

A stream's state is one :class:`StreamState`: samples not yet framed, the frontend's running
level (when it tracks one), feature frames not yet stacked, the convolution frontend's last
input frames (when the model has one), the RNN state, RNN outputs waiting for their
look-ahead, and the decoder.
:func:`forward_chunk` advances a batch of streams by one chunk and returns the new state;
:func:`stack_states` and :func:`unstack_state` move streams in and out of a batch.
:class:`StreamingRecognizer` drives one stream from raw samples to partial and final results.

Whatever the chunking, a stream computes the frames, log-probabilities and (without
endpointing) the transcript of the offline pass over the whole signal.

Shapes: ``B`` streams, ``N`` samples, ``T`` feature frames, ``U`` output frames, ``F``
features, ``H`` RNN outputs per frame, ``V`` vocabulary.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .audio import SAMPLE_RATE, InputFilter, dc_offset_warning, hum_warning, to_mono_float32
from .decoding import BeamSearch, BeamSearchDecoder, GreedyDecoder, WordTiming, beam_search_for, new_decoder
from .features import RunningMean, frame_levels, num_frames
from .model import SpeechModel, load_model
from .numpy_model import NumpyModel, numpy_model
from .rescoring import RESCORE_GROWTH, final_hypothesis


@dataclass
class StreamState:
    samples: torch.Tensor  # (B, S) samples after the last full frame's start, S < n_fft + chunk
    frames: torch.Tensor  # (B, R, F) normalised frames not yet stacked, R < frame_stack
    hidden: torch.Tensor  # (n_layers, B, H) RNN hidden state
    cell: torch.Tensor | None  # (n_layers, B, H) LSTM cell state (None for GRU)
    pending: torch.Tensor  # (B, P, H) RNN outputs waiting for look-ahead frames, P <= lookahead
    held: torch.Tensor  # (B, Q, I) stacked frames waiting for their input look-ahead, not yet run, Q <= input_lookahead
    frames_done: int = 0  # output frames produced so far (log-probabilities returned)
    decoders: list[GreedyDecoder | BeamSearchDecoder] = field(default_factory=list)  # one per stream
    tentative: torch.Tensor | None = None  # (B, P + Q, V) log-probabilities of the pending and held frames if silence followed (None: not read)
    features_done: int = 0  # feature frames produced so far
    level: torch.Tensor | None = None  # (B,) float64 running maximum of the frontend's level tracking (None: no frame yet)
    frames_log_mel: torch.Tensor | None = None  # (B, R, n_mels) ``frames`` before level tracking and the running mean (None: the frontend has neither)
    conv_context: tuple[torch.Tensor, ...] | None = None  # per convolution layer, (B, C_in, 2, F_in) its last input frames (None: no convolution frontend)
    cmn: RunningMean | None = None  # the frontend's running channel mean so far (None: no frame yet, or none in the frontend)


def init_state(model: SpeechModel, batch_size: int = 1, search: BeamSearch | None = None, time_offset: float = 0.0) -> StreamState:
    """The state of ``batch_size`` fresh streams (zeros, empty caches, new decoders: greedy,
    or ``search``'s beam search, with times counted from ``time_offset`` seconds)."""
    config = model.config
    if config.bidirectional:
        raise ValueError("a bidirectional model cannot stream; use a model trained with bidirectional=False")
    device = next(model.parameters()).device
    zeros = torch.zeros(config.n_layers, batch_size, config.n_hidden, device=device)
    return StreamState(
        samples=torch.zeros(batch_size, 0, device=device),
        frames=torch.zeros(batch_size, 0, config.frontend.n_features, device=device),
        hidden=zeros,
        cell=zeros.clone() if config.rnn_type == "lstm" else None,
        pending=torch.zeros(batch_size, 0, config.n_hidden, device=device),
        decoders=[new_decoder(model, search, time_offset) for _ in range(batch_size)],
        conv_context=model.conv_context(batch_size) if model.conv is not None else None,
        held=torch.zeros(batch_size, 0, model.proj[0].in_features // (config.input_lookahead + 1), device=device),
    )


@torch.inference_mode()
def extract_chunk(model: SpeechModel, samples: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
    """Chunk-exact features: ``(B, N)`` new samples -> ``(B, T, F)`` the frames they complete.

    Frames are emitted once their whole window has arrived, so any chunking emits exactly
    the frames of the whole signal.
    """
    log_mel, state = chunk_log_mel(model, samples, state)
    return normalized(model, log_mel), state


@torch.inference_mode()
def normalized(model: SpeechModel, log_mel: torch.Tensor) -> torch.Tensor:
    """``(B, T, n_mels)`` frames of :func:`chunk_log_mel` -> ``model``'s ``(B, T, F)`` input features."""
    frontend = model.frontend
    if not log_mel.shape[1]:
        return log_mel.new_zeros(log_mel.shape[0], 0, frontend.config.n_features)
    return frontend.normalize(frontend.transform(log_mel))


@torch.inference_mode()
def chunk_log_mel(model: SpeechModel, samples: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
    """:func:`extract_chunk` up to the features' last step: ``(B, T, n_mels)`` log-mel frames
    (level-tracked and mean-normalised where the frontend does either), which :func:`normalized` turns into a
    model's features; the state's frontend fields advance (:func:`with_frontend_of`)."""
    config = model.config.frontend
    buffer = torch.cat([state.samples, samples.to(state.samples.dtype)], dim=1)
    n = num_frames(buffer.shape[1], config)
    if n == 0:
        return state.frames.new_zeros(buffer.shape[0], 0, config.n_mels), dataclasses.replace(state, samples=buffer)
    energies = model.frontend.mel_energies(buffer[:, : (n - 1) * config.hop_length + config.n_fft])
    log_mel, level, cmn = _causal_normalized(model, energies, state.level, state.cmn, state.features_done)
    frames_log_mel = state.frames_log_mel
    if config.level_decay_db or config.running_cmn_frames:
        # The frames that forward_chunk will hold back unstacked, as they were before level
        # tracking and mean normalisation: an utterance restarting there re-normalises them
        # by its own level and mean.
        held = (state.frames.shape[1] + n) % model.config.frame_stack
        if held <= n:  # (the usual case: no copy of the frames held before)
            frames_log_mel = energies[:, n - held :]
        else:
            frames_log_mel = torch.cat([frames_log_mel, energies], dim=1)[:, -held:]
    return log_mel, dataclasses.replace(
        state,
        samples=buffer[:, n * config.hop_length :],
        features_done=state.features_done + n,
        level=level,
        frames_log_mel=frames_log_mel,
        cmn=cmn,
    )


def _causal_normalized(
    model: SpeechModel, energies: torch.Tensor, level: torch.Tensor | None, cmn: RunningMean | None, start: int
) -> tuple[torch.Tensor, torch.Tensor | None, RunningMean | None]:
    """``(B, T, n_mels)`` log-mel energies of frames ``start`` onwards through the frontend's
    causal normalisations (level tracking, then the running channel mean ``cmn``), from the state carried
    before them (None: they start afresh); returns the frames and the state to carry on."""
    frontend = model.frontend
    levels = frame_levels(energies) if frontend.config.running_cmn_gate_db else None  # (read by both, computed once)
    log_mel, level = frontend.track_level(energies, level, start, levels)
    if frontend.config.running_cmn_frames:
        log_mel, cmn = frontend.running_channel_mean(log_mel, cmn, levels)
    return log_mel, level, cmn


def with_frontend_of(state: StreamState, other: StreamState) -> StreamState:
    """``state`` with ``other``'s frontend fields (samples buffered, frames counted, level
    and channel mean tracked): a streaming partner that :func:`shares_frontend` with the first pass takes them
    from the first pass's state, whose chunks it reads too, instead of computing them again."""
    return dataclasses.replace(
        state,
        samples=other.samples,
        features_done=other.features_done,
        level=other.level,
        frames_log_mel=other.frames_log_mel,
        cmn=other.cmn,
    )


@torch.inference_mode()
def forward_chunk(model: SpeechModel, feats: torch.Tensor, state: StreamState, tentative: bool = True) -> tuple[torch.Tensor, StreamState]:
    """Advance the acoustic model over one chunk of frames.

    Args:
        model: a unidirectional model in eval mode.
        feats: ``(B, T, F)`` normalised frames following those already given (any ``T >= 0``).
        state: the streams' state before the chunk.
        tentative: also read the frames still waiting for look-ahead as if silence followed,
            into ``state.tentative`` (False: None there, and a model with an input look-ahead
            saves running its RNN over the held frames every chunk).

    Returns:
        ``(B, U, V)`` log-probabilities of the output frames this chunk completes (frames
        ``state.frames_done`` onwards), and the state after the chunk.
    """
    config = model.config
    feats = torch.cat([state.frames, feats], dim=1)
    k = config.frame_stack
    n_stacked = feats.shape[1] // k
    state = dataclasses.replace(state, frames=feats[:, n_stacked * k :])
    if n_stacked == 0:
        return feats.new_zeros(feats.shape[0], 0, len(config.vocab)), state
    stacked = feats[:, : n_stacked * k]
    if model.conv is not None:  # (only whole stacks: the frames held back may yet be normalised again, see StreamingRecognizer)
        stacked, context = model.convolve_causal(stacked, state.conv_context)
        state = dataclasses.replace(state, conv_context=context)
    stacked = stacked.reshape(feats.shape[0], n_stacked, -1)
    arrays = numpy_model(model)
    ahead = config.input_lookahead
    if ahead:  # the RNN runs the frames whose input look-ahead has arrived; the rest wait
        stacked = torch.cat([state.held, stacked], dim=1)
        n_run = max(0, stacked.shape[1] - ahead)
        stacked, state = model.with_future(stacked), dataclasses.replace(state, held=stacked[:, n_run:])
    out, state = _run(model, stacked, state, arrays)
    # With an input look-ahead the tentative frames come from _flush (its held frames too), not _emit.
    log_probs, state = _emit(model, out, state, final=False, arrays=arrays, tentative=tentative and not ahead)
    if tentative and ahead:  # what the stream would emit if it ended here
        state = dataclasses.replace(state, tentative=_flush(model, state, arrays)[0])
    return log_probs, state


def _run(model: SpeechModel, x: torch.Tensor, state: StreamState, arrays: NumpyModel | None) -> tuple[torch.Tensor, StreamState]:
    """The projection and RNN over ``(B, U, I)`` input frames: ``(B, U, H)`` outputs and the
    state with the RNN's state after them."""
    if not x.shape[1]:
        return x.new_zeros(x.shape[0], 0, state.pending.shape[2]), state
    if arrays is not None:  # on the CPU: the same steps in NumPy, at a fraction of ATen's per-call overhead
        out, hidden = arrays.rnn(x.numpy(), state.hidden.numpy())
        return torch.from_numpy(out), dataclasses.replace(state, hidden=torch.from_numpy(hidden))
    if state.cell is None:
        out, hidden = model.rnn(model.proj(x), state.hidden)
        return out, dataclasses.replace(state, hidden=hidden)
    out, (hidden, cell) = model.rnn(model.proj(x), (state.hidden, state.cell))
    return out, dataclasses.replace(state, hidden=hidden, cell=cell)


def set_threads(n: int) -> None:
    """Compute with ``n`` threads: torch's operators and the BLAS behind NumPy (the stream's GRU steps)."""
    if not (isinstance(n, int) and n >= 1):  # (torch takes 0 and negative counts without a word)
        raise ValueError(f"the thread count must be a whole number, 1 or more, got {n!r}")
    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")


@torch.inference_mode()
def flush(model: SpeechModel, state: StreamState) -> tuple[torch.Tensor, StreamState]:
    """End of stream: emit the frames held back for look-ahead (their future is silence,
    zeros, as in the offline pass). Samples and frames too few for a whole frame or stack
    are dropped, as offline."""
    return _flush(model, state, numpy_model(model))


def _flush(model: SpeechModel, state: StreamState, arrays: NumpyModel | None) -> tuple[torch.Tensor, StreamState]:
    ahead = model.config.input_lookahead
    if ahead and state.held.shape[1]:
        held = model.with_future(torch.nn.functional.pad(state.held, (0, 0, 0, ahead)))
        out, state = _run(model, held, dataclasses.replace(state, held=state.held[:, :0]), arrays)
    else:
        out = state.pending.new_zeros(state.pending.shape[0], 0, state.pending.shape[2])
    return _emit(model, out, state, final=True, arrays=arrays)


def _emit(
    model: SpeechModel, out: torch.Tensor, state: StreamState, final: bool, arrays: NumpyModel | None, tentative: bool = True
) -> tuple[torch.Tensor, StreamState]:
    """Log-probabilities of the output frames whose look-ahead has arrived (all of them if
    ``final``), and the state holding the rest as ``pending``, with their reading as if silence
    followed as ``tentative`` (None unless ``tentative``)."""
    lookahead = model.config.lookahead
    buffer = torch.cat([state.pending, out], dim=1)
    n_ready = buffer.shape[1] if final else max(0, buffer.shape[1] - lookahead)
    if arrays is not None:
        log_probs = torch.from_numpy(arrays.head(buffer.numpy()))
    elif lookahead:
        # Frames past the buffer are taken as silence (zeros): what a stream's last frames see
        # at the end, and the tentative reading of the frames still waiting for look-ahead.
        buffer_mixed = model.mix_lookahead(torch.nn.functional.pad(buffer, (0, 0, 0, lookahead)))
        log_probs = model.head(buffer_mixed).log_softmax(dim=-1)
    else:
        log_probs = model.head(buffer).log_softmax(dim=-1)
    return log_probs[:, :n_ready], dataclasses.replace(
        state, pending=buffer[:, n_ready:], tentative=log_probs[:, n_ready:] if tentative else None, frames_done=state.frames_done + n_ready
    )


def stack_states(states: Sequence[StreamState]) -> StreamState:
    """Join streams into one batch (their caches must have equal shapes, which streams fed
    equal chunks since their start have)."""
    for name in ("samples", "frames", "pending", "held"):
        shapes = {tuple(getattr(s, name).shape[1:]) for s in states}
        if len(shapes) > 1:
            raise ValueError(f"cannot stack streams whose {name} caches differ in shape: {sorted(shapes)}")
    if len({(s.frames_done, s.features_done) for s in states}) > 1:  # (equal counts: all have a level or none)
        raise ValueError("cannot stack streams at different frame counts")
    return StreamState(
        samples=torch.cat([s.samples for s in states]),
        frames=torch.cat([s.frames for s in states]),
        hidden=torch.cat([s.hidden for s in states], dim=1),
        cell=None if states[0].cell is None else torch.cat([s.cell for s in states], dim=1),
        pending=torch.cat([s.pending for s in states]),
        frames_done=states[0].frames_done,
        decoders=[d for s in states for d in s.decoders],
        tentative=None if any(s.tentative is None for s in states) else torch.cat([s.tentative for s in states]),
        features_done=states[0].features_done,
        level=None if states[0].level is None else torch.cat([s.level for s in states]),
        frames_log_mel=None if any(s.frames_log_mel is None for s in states) else torch.cat([s.frames_log_mel for s in states]),
        cmn=RunningMean.cat([s.cmn for s in states]),
        conv_context=None if states[0].conv_context is None else tuple(torch.cat(layer) for layer in zip(*(s.conv_context for s in states))),
        held=torch.cat([s.held for s in states]),
    )


def unstack_state(state: StreamState) -> list[StreamState]:
    """Split a batch of streams into one state per stream."""
    return [
        StreamState(
            samples=state.samples[b : b + 1],
            frames=state.frames[b : b + 1],
            hidden=state.hidden[:, b : b + 1],
            cell=None if state.cell is None else state.cell[:, b : b + 1],
            pending=state.pending[b : b + 1],
            frames_done=state.frames_done,
            decoders=state.decoders[b : b + 1],
            tentative=None if state.tentative is None else state.tentative[b : b + 1],
            features_done=state.features_done,
            level=None if state.level is None else state.level[b : b + 1],
            frames_log_mel=None if state.frames_log_mel is None else state.frames_log_mel[b : b + 1],
            cmn=None if state.cmn is None else state.cmn.row(b),
            conv_context=None if state.conv_context is None else tuple(layer[b : b + 1] for layer in state.conv_context),
            held=state.held[b : b + 1],
        )
        for b in range(state.samples.shape[0])
    ]


def restarted(model: SpeechModel, state: StreamState, search: BeamSearch | None, time_offset: float) -> StreamState:
    """A one-stream ``state`` (flushed) restarted for the next utterance at its next frame:
    the RNN, the convolution frontend, the frontend's level tracking and running channel mean
    and the decoder start afresh, as at a stream's start (how every training example starts);
    the samples and frames already buffered are kept."""
    # A level carried over from the speech before left the fresh RNN facing the pause at
    # that level, which it often read as a letter ("p", "x"); see the README's Status.
    frames, level = state.frames, None  # level None: the tracking restarts at the next frame
    cmn = None
    if state.frames_log_mel is not None and state.frames_log_mel.shape[1]:
        # A frame held back for stacking was normalised by the old level, so the fresh RNN
        # would meet a pause far below its level, then the same pause at its own level, and
        # read that jump as a letter ("s"); it is normalised again as a new stream would.
        start = state.features_done - state.frames_log_mel.shape[1]
        log_mel, level, cmn = _causal_normalized(model, state.frames_log_mel, None, None, start)
        frames = normalized(model, log_mel)
    return dataclasses.replace(
        init_state(model, search=search, time_offset=time_offset),
        samples=state.samples,
        frames=frames,
        frames_done=state.frames_done,
        features_done=state.features_done,
        level=level,
        frames_log_mel=state.frames_log_mel,
        cmn=cmn,
    )


def shares_frontend(model: SpeechModel, partner: SpeechModel) -> bool:
    """Whether ``partner``'s log-mel frames are ``model``'s: the same frontend settings and
    filters (their normalisation statistics may differ: :func:`normalized` applies each model's)."""
    if partner.frontend.config != model.frontend.config:
        return False
    mine, theirs = model.frontend.state_dict(), partner.frontend.state_dict()
    return mine.keys() == theirs.keys() and all(
        torch.equal(value, theirs[name]) for name, value in mine.items() if name not in ("cmvn_mean", "cmvn_std")
    )


def streams_beside(model: SpeechModel, partner: SpeechModel) -> bool:
    """Whether ``partner`` can stream beside ``model`` as its second pass: unidirectional, with
    the same sample rate and output frame rate (so that its frames are the first pass's)."""
    return (
        not partner.config.bidirectional
        and partner.config.frontend.sample_rate == model.config.frontend.sample_rate
        and partner.config.frame_samples == model.config.frame_samples
    )


# Endpointing is read after about this many seconds of audio, however long a chunk is (the
# live command's chunks are 0.1 s by default).
ENDPOINT_STEP = 0.1


@dataclass(frozen=True)
class EndpointConfig:
    trailing_silence: float = 0.8  # seconds without a new character after speech that end an utterance
    no_speech: float = 2.4  # seconds with no character at all after which the (empty) utterance restarts
    max_utterance: float = 20.0  # an utterance is cut at this length

    def __post_init__(self):
        if min(self.trailing_silence, self.no_speech, self.max_utterance) <= 0:
            raise ValueError("endpoint durations must be positive")


class Result(NamedTuple):
    type: str  # "partial" (may still change) or "final"
    text: str
    start: float  # seconds from stream start to the utterance's start
    end: float  # seconds from stream start to the end of the audio decoded for it
    words: list[WordTiming]  # times absolute from stream start

    def to_json(self) -> dict:
        return {"type": self.type, "text": self.text, "start": self.start, "end": self.end, "words": [w._asdict() for w in self.words]}


class StreamingRecognizer:
    """Live recognition of one audio stream with a unidirectional model.

    Feed samples as they arrive; each call returns the utterances that endpointing
    finished during the chunk (``type == "final"``) followed by the current partial result.
    With ``endpoint=None`` the whole stream is one utterance and the final text equals
    offline decoding of the whole signal with the same model.

    When the beam search has a rescoring model (:mod:`speechrnn.rescoring`; for the bundled
    streaming model, ``--rescore offline``), an utterance's final is its n best re-ranked by
    that model over the utterance, as whole-file decoding re-ranks them. A bidirectional
    partner reads the utterance's audio, which the recognizer keeps (at most the rescorer's
    ``max_seconds``); a unidirectional one with the same frame rate streams beside the first
    pass, chunk by chunk, and its frames are kept instead (it then restarts with each
    utterance as the first pass does, so its frames are what a stream of it would compute).

    Example:
        >>> recognizer = StreamingRecognizer("streaming")  # doctest: +SKIP
        >>> for chunk in chunks:  # doctest: +SKIP
        ...     events = recognizer.accept_waveform(chunk, 48000)
        >>> recognizer.finalize().text  # doctest: +SKIP
    """

    def __init__(
        self,
        model: SpeechModel | str = "streaming",
        endpoint: EndpointConfig | None = EndpointConfig(),
        lm: BeamSearch | str | None = "default",
        tentative: bool = True,
        rescore_partials: bool = False,
        rescore_growth: float = RESCORE_GROWTH,
        remove_dc: bool = False,
        remove_hum: float | None = None,
    ):
        """
        Args:
            model: a unidirectional model or its bundled name or path.
            endpoint: endpointing rules, or None for one utterance per stream.
            lm: a :class:`BeamSearch`, or what :func:`~speechrnn.decoding.beam_search_for`
                takes (``"default"``: the model's tuned LM if any; ``"none"``: greedy).
            tentative: with a look-ahead model, partial results also read the output frames
                still waiting for their look-ahead, as if silence followed (as at the end of a
                stream): greedy decoding decodes them, beam search reads them on the best path
                after its words (continuing a word, not starting one). The next chunk may change those. This shows a word up to a
                chunk earlier. Finals never use it.
            rescore_partials: with a second pass, partials are re-ranked by it too: the
                search's n best at the last frame, scored with the rescoring model's CTC
                likelihood over the utterance so far, as the utterance grows (``rescore_growth``).
                Partials then show the words the final will keep more often; finals are
                unchanged. Figures in the README's Status (``scripts/bench_streaming.py
                --rescore offline --rescore-partials [--rescore-growth G]``).
            rescore_growth: with ``rescore_partials``, a partial is re-ranked once the
                utterance has grown by this share of its length since the last re-ranked one
                (0: every partial, whose cost grows with the utterance's length). The
                rescoring model then reads each utterance about ``(1 + g) / g`` times over at
                most, whatever its length. In between, a partial keeps the last re-ranked
                choice where the search still holds an extension of it, else it is the usual
                one. AN4 dev (session 32): 0 gives 93.2% of partials prefixes of their final
                at RTF 0.34, 0.25 91.2% at 0.11, 1 88.0% at 0.06; without re-ranking 86.3%.
            remove_dc: the stream (at the model's rate) goes through a
                :class:`~speechrnn.audio.DCBlocker`, which takes out a constant offset some
                sound cards add (:func:`~speechrnn.transcribe.recognize` with ``remove_dc``
                filters a whole input the same way). :attr:`input_warnings` tells whether it is needed.
            remove_hum: mains hum at this many Hz (50 or 60) is taken out of the stream after
                that (:class:`~speechrnn.audio.HumFilter`: notches at it and its multiples);
                :attr:`input_warnings` tells whether it is needed.
        """
        self.model = load_model(model) if isinstance(model, str) else model.eval()
        self.search = lm if isinstance(lm, BeamSearch) or lm is None else beam_search_for(self.model, lm)
        self.endpoint = endpoint
        self.tentative = tentative
        self.rescore_partials = rescore_partials
        if rescore_growth < 0:
            raise ValueError(f"rescore_growth must be >= 0, got {rescore_growth}")
        self.rescore_growth = rescore_growth
        self.remove_dc = remove_dc
        self.remove_hum = remove_hum
        self.sample_rate = self.model.config.frontend.sample_rate
        self._endpoint_samples = round(ENDPOINT_STEP * self.sample_rate)
        self.frame_shift = self.model.config.frame_shift
        partner = self.rescorer.partner if self.rescorer is not None else None
        self._partner_streams = partner is not None and streams_beside(self.model, partner)
        self._partner_shares_frontend = self._partner_streams and shares_frontend(self.model, partner)
        self.invalid_samples = 0  # NaN or infinite input samples replaced by zeros, since the recognizer was made (reset() keeps the count)
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new stream starting at time 0."""
        self.state = init_state(self.model, search=self.search)
        self._resampler = None
        self._input_filter = InputFilter(self.remove_dc, self.remove_hum, self.sample_rate)
        # The stream's current second at the model's rate, before the input filter (filled up
        # to _second_filled), for input_warnings; dc_offset is the first second's mean.
        self._second = np.empty(self.sample_rate, dtype=np.float32)
        self._second_filled = 0
        self._first_mean: float | None = None
        # What the stream's input shows that the options do not mend, as warnings' words
        # (:func:`speechrnn.audio.dc_offset_warning`, :func:`speechrnn.audio.hum_warning`), each
        # kind once: a DC offset read on the first second, mains hum on every second until it
        # is heard. Like everything else, reset() and finalize() clear it (a new stream).
        self.input_warnings: list[str] = []
        self._hum_told = False
        self._input_rate: int | None = None
        # The current utterance's audio for the rescoring model: chunks at the model's rate,
        # from stream sample _audio_start on; _too_long once the utterance outgrew its limit.
        self._audio: list[torch.Tensor] = []
        self._audio_start = self._audio_end = 0
        self._too_long = False
        # A streaming partner's state and its log-probabilities of the current utterance's
        # frames, ``(U_i, V)`` per chunk (None: the partner is not streamed).
        self._partner_state = init_state(self.rescorer.partner) if self._partner_streams else None
        self._partner_frames: list[torch.Tensor] = []
        self._forget_partial_choice()

    def _forget_partial_choice(self) -> None:
        # Re-ranked partials: the utterance's length in samples at the last re-ranking, and
        # the tokens it chose where they were not the search's best (else None).
        self._reranked_at = 0
        self._partial_choice: list[int] | None = None

    @property
    def dc_offset(self) -> float | None:
        """The mean of the stream's first second of samples (at the model's rate, as they came),
        None until a second has come: a DC offset, which ``remove_dc`` takes out, where it is
        far from 0 (over :data:`~speechrnn.audio.DC_WARNING`)."""
        return self._first_mean

    def _read_input(self, samples: np.ndarray) -> None:
        """Add samples (at the model's rate, before the input filter) to the current second;
        each whole one is read for :attr:`input_warnings`: a DC offset on the first second
        only (a sound card's is there from the start; later seconds of speech may have means
        of their own), mains hum on every second until it is heard (it starts when a cable is
        plugged in); not what the recognizer's options take out."""
        while samples.size:
            n = min(samples.size, self.sample_rate - self._second_filled)
            self._second[self._second_filled : self._second_filled + n] = samples[:n]
            self._second_filled += n
            samples = samples[n:]
            if self._second_filled < self.sample_rate:
                return
            self._second_filled = 0
            if self._first_mean is None:
                self._first_mean = float(self._second.mean(dtype=np.float64))
                told = None if self.remove_dc else dc_offset_warning(self._first_mean)
                self.input_warnings += [told] if told else []
            told = hum_warning(self._second, self.sample_rate, removed=self.remove_hum)
            if told:
                self._hum_told = True
                self.input_warnings.append(told)
                return

    @property
    def rescorer(self):
        """The beam search's second pass, or None."""
        return self.search.rescorer if self.search is not None else None

    @property
    def decoder(self) -> GreedyDecoder | BeamSearchDecoder:
        return self.state.decoders[0]

    def accept_waveform(self, samples: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> list[Result]:
        """Feed ``(N,)`` or ``(N, C)`` samples (float in [-1, 1] or integer PCM) at ``sample_rate``.

        Returns:
            The finals completed in this chunk (endpointing), then the current partial.
        """
        samples = self._to_model_rate(samples, sample_rate, last=False)
        events = []
        # Endpointing reads the stream every ENDPOINT_STEP seconds of audio however long the
        # chunk, so a call with seconds of audio ends its utterances (and cuts at
        # max_utterance) where a microphone's 100 ms chunks would; the frames are the same
        # either way (chunk-exact features).
        # A chunk is cut into equal pieces of about ENDPOINT_STEP (a 100 ms chunk that the
        # resampler made a few samples longer stays whole); only the last piece's tentative
        # frames are read, by the partial.
        n = samples.shape[1]
        n_pieces = 1 if self.endpoint is None else max(1, round(n / self._endpoint_samples))
        bounds = [n * k // n_pieces for k in range(n_pieces + 1)]
        for k in range(n_pieces):
            self._decode(samples[:, bounds[k] : bounds[k + 1]], tentative=k == n_pieces - 1)
            reason = self._endpoint_reason()
            if reason == "final":
                events.append(self._end_utterance())
            elif reason == "restart":
                self._end_utterance()
        events.append(self._result("partial"))
        return events

    def finalize(self) -> Result:
        """End of stream: decode everything left and return the last utterance's final."""
        # A search already finished: Ctrl-C (or SIGTERM) landed while endpointing was closing an
        # utterance, after its search ended and before the next began. That utterance is the
        # stream's last, and its final is returned rather than lost.
        if not getattr(self.decoder, "finished", False):
            samples = self._to_model_rate(np.zeros(0, dtype=np.float32), self._input_rate or self.sample_rate, last=True)
            self._decode(samples)  # the resampler's tail; no endpoint check, the stream ends here anyway
            log_probs, self.state = flush(self.model, self.state)
            self.decoder.step(log_probs[0])
            self.decoder.finish()
        self._flush_partner()
        result = self._result("final")
        self.reset()
        return result

    def _to_model_rate(self, samples, sample_rate: int, last: bool) -> torch.Tensor:
        if not sample_rate > 0:
            raise ValueError(f"sample rate must be a positive number of Hz, got {sample_rate}")
        if self._input_rate is not None and sample_rate != self._input_rate:
            raise ValueError(f"sample rate changed mid-stream from {self._input_rate} to {sample_rate} Hz; call reset() first")
        samples = to_mono_float32(samples)
        bad = ~np.isfinite(samples)
        if bad.any():
            self.invalid_samples += int(bad.sum())
            samples = np.where(bad, 0.0, samples).astype(np.float32)
        self._input_rate = int(sample_rate)
        if sample_rate != self.sample_rate:
            import soxr

            # A streaming resampler keeps its filter state between chunks, so chunk edges leave no clicks.
            if self._resampler is None:
                self._resampler = soxr.ResampleStream(sample_rate, self.sample_rate, 1, dtype="float32")
            samples = self._resampler.resample_chunk(samples, last=last)
        if not self._hum_told:
            self._read_input(samples)
        if self._input_filter:
            samples = self._input_filter(samples)
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]

    def _decode(self, samples: torch.Tensor, tentative: bool = True) -> None:
        """Advance the stream over ``(1, N)`` samples; ``tentative``: the partial after them
        will be read (False: their frames waiting for look-ahead are not read for one)."""
        self._keep_audio(samples[0])
        log_mel, self.state = chunk_log_mel(self.model, samples, self.state)
        log_probs, self.state = forward_chunk(self.model, normalized(self.model, log_mel), self.state, tentative=self.tentative and tentative)
        self.decoder.step(log_probs[0])
        if self._partner_state is not None:
            partner = self.rescorer.partner
            if self._partner_shares_frontend:  # (the same frames: not computed twice)
                self._partner_state = with_frontend_of(self._partner_state, self.state)
            else:
                log_mel, self._partner_state = chunk_log_mel(partner, samples, self._partner_state)
            # (its tentative frames are read by re-ranked partials only)
            log_probs, self._partner_state = forward_chunk(partner, normalized(partner, log_mel), self._partner_state, tentative=self.rescore_partials and tentative)
            self._keep_partner_frames(log_probs[0])

    def _flush_partner(self) -> None:
        """End of utterance for a streaming partner: its frames held for look-ahead."""
        if self._partner_state is not None:
            log_probs, self._partner_state = flush(self.rescorer.partner, self._partner_state)
            self._keep_partner_frames(log_probs[0])

    def _keep_partner_frames(self, log_probs: torch.Tensor) -> None:
        if not self._too_long and log_probs.shape[0]:  # (past the limit the first pass's best stands: none needed)
            self._partner_frames.append(log_probs)

    def _keep_audio(self, samples: torch.Tensor) -> None:
        self._audio_end += samples.shape[0]
        if self.rescorer is None:
            return
        if self._partner_state is not None:  # (a streaming partner keeps its frames instead)
            if self._audio_end - self._audio_start > self.rescorer.max_samples:
                self._too_long, self._partner_frames = True, []
            return
        self._audio.append(samples.clone())  # (the samples may be a view of the caller's buffer)
        if self._audio_end - self._audio_start > self.rescorer.max_samples:
            # Too long to rescore: the first pass's best will stand. Only the last second is
            # kept, where the next utterance will start, so memory stays bounded.
            tail = torch.cat(self._audio)[-self.sample_rate :]
            self._audio, self._audio_start, self._too_long = [tail], self._audio_end - tail.shape[0], True

    def _next_utterance_audio(self, start: int) -> None:
        """Drop the buffered audio before stream sample ``start``, where the next utterance begins."""
        if self.rescorer is None:
            return
        kept = torch.cat(self._audio) if self._audio else torch.zeros(0)
        self._audio = [kept[max(0, start - self._audio_start) :]]
        self._partner_frames = []
        self._too_long = False  # (an utterance starts within the last frames, which the kept second holds)
        self._audio_start = start
        self._forget_partial_choice()

    def _partner_log_probs(self, partial: bool = False) -> torch.Tensor | None:
        """The rescoring model's ``(U, V)`` log-probabilities of the current utterance, or None
        where the second pass does not apply. For a partial, a streaming partner's frames still
        waiting for their look-ahead are read as if silence followed, as the partner's pass
        over the audio so far would read them."""
        if self._too_long:
            return None
        if self._partner_state is None:
            audio = torch.cat(self._audio) if self._audio else torch.zeros(0)
            return self.rescorer.partner_log_probs([audio]).get(0)
        frames = list(self._partner_frames)
        ahead = self._partner_state.tentative
        if partial and ahead is not None and ahead.shape[1]:
            frames.append(ahead[0])
        if not frames:
            return None
        return torch.cat(frames)

    def _rescored_partial(self):
        """The partial's hypothesis as the second pass ranks the search's current n best, or
        None where it keeps the search's best (the partial is then the usual one, with its
        tentative frames) or does not apply. Between re-rankings (``rescore_growth``), the
        best of the n best that extends the last re-ranked choice, or None where the search's
        best does or none does."""
        if not isinstance(self.decoder, BeamSearchDecoder):
            return None
        length = self._audio_end - self._audio_start
        if length < self._reranked_at * (1 + self.rescore_growth):
            if self._partial_choice is None:
                return None  # (the last re-ranking kept the search's best: no need to list the n best)
            choice, candidates = self._partial_choice, self.decoder.current_candidates()
            kept = next((i for i, c in enumerate(candidates) if c.tokens[: len(choice)] == choice), None)
            if not kept:  # (None: no candidate extends the choice; 0: the search's best does)
                self._partial_choice = None
                return None
            return self.decoder.candidate_hypothesis(candidates[kept])
        candidates = self.decoder.current_candidates()
        if len(candidates) < 2:
            return None
        partner = self._partner_log_probs(partial=True)
        if partner is None:
            return None
        self._reranked_at = length
        best = candidates[self.rescorer.ranking(candidates, partner)[0][0]]
        self._partial_choice = None if best.tokens == candidates[0].tokens else list(best.tokens)
        return None if self._partial_choice is None else self.decoder.candidate_hypothesis(best)

    def _endpoint_reason(self) -> str | None:
        if self.endpoint is None:
            return None
        decoder, shift = self.decoder, self.frame_shift
        if decoder.n_frames * shift >= self.endpoint.max_utterance:
            return "final" if decoder.last_emission >= 0 else "restart"
        if decoder.last_emission < 0:
            return "restart" if decoder.n_frames * shift >= self.endpoint.no_speech else None
        silence = (decoder.n_frames - 1 - decoder.last_emission) * shift
        return "final" if silence >= self.endpoint.trailing_silence else None

    def _end_utterance(self) -> Result:
        """Close the current utterance and start the next at the following frame
        (:func:`restarted`; a streaming partner restarts there too)."""
        log_probs, self.state = flush(self.model, self.state)
        self.decoder.step(log_probs[0])
        self.decoder.finish()
        self._flush_partner()
        result = self._result("final")
        offset = self.state.frames_done * self.frame_shift  # the next utterance starts at the next frame
        self._next_utterance_audio(self.state.frames_done * self.model.config.frame_samples)
        self.state = restarted(self.model, self.state, self.search, offset)
        if self._partner_state is not None:
            self._partner_state = restarted(self.rescorer.partner, self._partner_state, None, offset)
        return result

    def _result(self, kind: str) -> Result:
        decoder, n_frames = self.decoder, self.decoder.n_frames
        ahead = self.state.tentative
        rescored = self._rescored_partial() if kind == "partial" and self.rescore_partials and self.rescorer is not None else None
        if rescored is not None:
            text, words = rescored.text, rescored.words
            if self.tentative and ahead is not None:  # (it read them too: a partial's end never steps back)
                n_frames += ahead.shape[1]
        elif kind == "partial" and self.tentative and ahead is not None and ahead.shape[1]:
            (text, words), n_frames = decoder.peek(ahead[0]), n_frames + ahead.shape[1]
        elif kind == "final" and self.rescorer is not None:
            hyp = final_hypothesis(self.search, decoder, self._partner_log_probs)
            text, words = hyp.text, hyp.words
        else:
            text, words = decoder.transcript()
        start = decoder.time_offset  # where the current utterance began, from stream start
        return Result(kind, text, round(start, 3), round(start + n_frames * self.frame_shift, 3), words)
