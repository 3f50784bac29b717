"""Live transcription: audio sources (microphone, file or standard input) feeding a StreamingRecognizer.

The microphone callback only copies samples into a queue, so the audio thread never waits
for the model; the main thread recognises and prints.
"""
from __future__ import annotations

import json
import queue
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator, TextIO

import numpy as np

from .audio import STDIN_NAME, load_audio
from .streaming import Result, StreamingRecognizer


class SourceLost(RuntimeError):
    """The audio source stopped delivering (a microphone unplugged, a stream that died)."""


def list_devices() -> str:
    """PortAudio's devices as sounddevice lists them (``>`` marks the default input, ``*`` the
    default input and output), or ``""`` when it sees none."""
    import sounddevice as sd

    devices = sd.query_devices()
    return str(devices) if len(devices) else ""


@dataclass
class Chunk:
    samples: np.ndarray  # (N, C) or (N,) float32
    sample_rate: int


def file_chunks(path: str, chunk_ms: int, realtime: bool) -> Iterator[Chunk]:
    """A file read as the offline path reads it (16 kHz mono), cut into ``chunk_ms`` chunks,
    optionally paced at real time. The file is read before this returns, so a bad one is an
    ``AudioError`` here, not once the session has started."""
    samples = load_audio(path)
    step = max(1, 16000 * chunk_ms // 1000)

    def chunks() -> Iterator[Chunk]:
        started = time.monotonic()
        for start in range(0, len(samples), step):
            if realtime:
                delay = started + (start + step) / 16000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Chunk(samples[start : start + step], 16000)

    return chunks()


def stdin_chunks(chunk_ms: int, raw_rate: int | None = None, stream: BinaryIO | None = None) -> Iterator[Chunk]:
    """Standard input (or ``stream``) as it arrives, in ``chunk_ms`` chunks: a WAV stream (its
    header first; integer or float samples, any channel count, the plain header or the extended
    one that sox and ffmpeg write for more than 2 channels or 16 bits; a length left unknown, as
    a tool writing to a pipe leaves it, reads to the end), or with ``raw_rate`` headerless 16-bit
    little-endian mono samples at that rate (``ffmpeg ... -f s16le -ac 1 -ar 16000 -``,
    ``arecord -f S16_LE``). The header is read before this returns, so a stream that is not
    such audio is a ValueError here, not in the middle of a session. libsndfile (soundfile)
    reads the WAV from the pipe's file descriptor, which it reads without seeking."""
    stream = stream if stream is not None else sys.stdin.buffer
    if raw_rate is not None:
        if raw_rate <= 0:
            raise ValueError(f"--raw-rate must be a positive rate in Hz, got {raw_rate}")
        step = max(1, raw_rate * chunk_ms // 1000) * 2

        def raw_chunks() -> Iterator[Chunk]:
            while True:
                data = stream.read(step)  # a pipe's read waits for the whole chunk, or the end
                usable = len(data) - len(data) % 2  # a sample cut off by the end is dropped
                if usable:
                    yield Chunk(np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0, raw_rate)
                if len(data) < step:
                    return

        return raw_chunks()
    import soundfile as sf

    try:
        try:
            source = stream.fileno()  # (a pipe: libsndfile reads it as it arrives)
        except (AttributeError, OSError):
            source = stream  # (a file object of bytes in memory)
        wav = sf.SoundFile(source, closefd=False) if isinstance(source, int) else sf.SoundFile(source)
    except (RuntimeError, TypeError) as error:  # (libsndfile's errors are RuntimeErrors)
        reason = str(error).split(": ", 1)[-1] or "it ended before a WAV header did"
        raise ValueError(f"{STDIN_NAME}: not a WAV stream ({reason}); for headerless 16-bit samples give --raw-rate HZ") from None
    rate, frames = wav.samplerate, max(1, wav.samplerate * chunk_ms // 1000)

    def chunks() -> Iterator[Chunk]:
        with wav:
            first = True
            while True:
                samples = wav.read(frames, dtype="float32", always_2d=True)  # waits for the whole chunk, or the end
                if first and not len(samples):
                    raise SourceLost(f"{STDIN_NAME}: the WAV stream holds no samples (its header may give its length as 0)")
                first = False
                if len(samples):
                    yield Chunk(samples, rate)
                if len(samples) < frames:
                    return

    return chunks()


class Microphone:
    """Records from a sounddevice input at the device's own rate (or ``sample_rate``) and channel
    count (at most 2).

    Iterating yields chunks of ``chunk_ms``; overflows are counted, never fatal.
    """

    def __init__(self, device: int | str | None = None, chunk_ms: int = 100, stall_seconds: float = 2.0, sample_rate: int | None = None):
        import sounddevice as sd

        info = sd.query_devices(device, "input")
        self.device = device
        self.name = info["name"]
        self.sample_rate = sample_rate or int(info["default_samplerate"])
        self.channels = max(1, min(2, int(info["max_input_channels"])))
        self.blocksize = max(1, self.sample_rate * chunk_ms // 1000)
        self.stall_seconds = max(stall_seconds, 2 * chunk_ms / 1000)  # (a block arrives every chunk_ms)
        self.overflows = 0
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._stream = sd.InputStream(
            device=device,
            samplerate=self.sample_rate,
            channels=self.channels,
            dtype="float32",
            blocksize=self.blocksize,
            callback=self._callback,
        )

    @property
    def backlog_seconds(self) -> float:
        """Audio recorded and not yet taken: how far recognition lags behind the microphone."""
        return self._queue.qsize() * self.blocksize / self.sample_rate

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self._queue.put(indata.copy())

    def __enter__(self) -> "Microphone":
        self._stream.start()
        return self

    def __exit__(self, *exc) -> None:
        import sounddevice as sd

        # A device that went away mid-session can fail to stop or close; by then the session's
        # utterances are printed, so that is worth a warning, not a traceback.
        for step in (self._stream.stop, self._stream.close):
            try:
                step()
            except sd.PortAudioError as error:
                print(f"warning: closing input device {self.name!r}: {error}", file=sys.stderr, flush=True)

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            waited = time.monotonic()
            try:
                block = self._queue.get(timeout=self.stall_seconds)
            except queue.Empty:
                if self._stream.active and time.monotonic() - waited > 1.5 * self.stall_seconds:
                    # The wait outlasted its timeout by far: this process was stopped (Ctrl-Z,
                    # then fg), not the device. It gets another wait to deliver in.
                    continue
                state = "stopped" if not self._stream.active else f"silent for {self.stall_seconds:.0f} s"
                raise SourceLost(f"input device {self.name!r} {state}: no audio is arriving") from None
            yield Chunk(block, self.sample_rate)


# A microphone's audio waiting this long for recognition is reported (once, until it catches up).
LAG_WARNING_SECONDS = 2.0


class Printer:
    """Writes events: JSON lines, or text with the partial rewritten in place on a terminal.

    A partial wider than the terminal shows its end only ("..." before it): a line the terminal
    has wrapped cannot be taken back by rewriting it, so its head would stay on screen. The
    final, printed once, is whole. ``columns`` is the width (the terminal's, asked at each
    partial, so a resized window is followed)."""

    def __init__(self, fmt: str, out: TextIO | None = None, columns: int | None = None):
        self.fmt = fmt
        self.out = out if out is not None else sys.stdout  # (the stdout of the call, not of the import)
        self.tty = self.out.isatty()
        self.columns = columns
        self._last_partial = ""

    def __call__(self, event: Result) -> None:
        if event.type == "partial":
            if event.text == self._last_partial:
                return  # only changes are worth a line
            self._last_partial = event.text
            if self.fmt == "jsonl":
                self._write(json.dumps(event.to_json()) + "\n")
            elif self.tty:
                self._write("\r\033[K" + self._fitted(event.text))
            return
        self._last_partial = ""
        if self.fmt == "jsonl":
            self._write(json.dumps(event.to_json()) + "\n")
        else:
            self._write(("\r\033[K" if self.tty else "") + event.text + "\n")

    def _fitted(self, text: str) -> str:
        """``text``'s end, short of the terminal's last column (where a cursor would wrap)."""
        columns = self.columns or shutil.get_terminal_size().columns
        room = max(columns - 1, 4)
        return text if len(text) <= room else "..." + text[len(text) - room + 3:]

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


class _Terminate(Exception):
    pass


def run(recognizer: StreamingRecognizer, chunks, printer: Printer, log: TextIO = sys.stderr, started: str = "") -> int:
    """Feed ``chunks`` to ``recognizer`` and print events until the source ends, Ctrl-C or
    SIGTERM; then finalize and print the last utterance. Returns the exit status.

    ``started`` goes to ``log`` once SIGTERM is handled, so that whoever waits for it may stop
    the session from then on."""

    def on_term(signum, frame):
        raise _Terminate

    previous = signal.signal(signal.SIGTERM, on_term)
    status, warned, lagging, input_told = 0, 0, False, 0
    try:
        if started:
            print(started, file=log, flush=True)
        for chunk in chunks:
            for event in recognizer.accept_waveform(chunk.samples, chunk.sample_rate):
                printer(event)
            if recognizer.invalid_samples > warned:
                print(f"speechrnn: warning: {recognizer.invalid_samples - warned} NaN/infinite samples replaced by silence", file=log)
                warned = recognizer.invalid_samples
            for told in recognizer.input_warnings[input_told:]:  # (each kind once: a DC offset after the first second, hum once heard)
                print(f"speechrnn: warning: the input: {told}", file=log)
            input_told = len(recognizer.input_warnings)
            backlog = getattr(chunks, "backlog_seconds", 0.0)
            if backlog >= LAG_WARNING_SECONDS and not lagging:
                print(f"speechrnn: warning: recognition is {backlog:.1f} s behind the microphone (a lighter search: --lm none, no --rescore-partials; or more --threads)", file=log)
            lagging = backlog >= LAG_WARNING_SECONDS or (lagging and backlog > LAG_WARNING_SECONDS / 4)  # (warned again once it has caught up)
            overflows = getattr(chunks, "overflows", 0)
            if overflows:
                print(f"speechrnn: warning: input overflow, {overflows} block(s) of audio lost", file=log)
                chunks.overflows = 0
    except (KeyboardInterrupt, _Terminate):
        pass
    except SourceLost as error:
        print(f"speechrnn: error: {error}", file=log)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    final = recognizer.finalize()
    if final.text or recognizer.endpoint is None:  # without endpointing the stream is one utterance, even an empty one
        printer(final)
    return status
