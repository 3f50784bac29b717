"""Audio in: constants, loading, resampling and downmixing.

Everything downstream sees mono float32 samples at ``SAMPLE_RATE`` in [-1, 1].
"""
from __future__ import annotations

import io
import numbers
import os
import sys
from functools import lru_cache
from math import gcd

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms analysis window
HOP_LENGTH = 160  # 10 ms between frames
MAX_CHANNELS = 64  # more, and a (C, N) array was passed for (N, C)
MIN_DURATION = 0.25  # seconds; shorter clips cannot hold a word and are rejected
# A mean sample this far from zero (-46 dB full scale) is a DC offset worth removing (1072 of
# AN4's 1078 recordings have means under 0.002 in magnitude; two of the six others, whose offset
# drifts within the recording, are over this): at 0.01 the bundled streaming model's AN4 dev word errors with the
# LM went from 38 to 71, the offline model's from 33 to 47 (session 65, recipes/an4/RESULTS.md).
DC_WARNING = 0.005
DC_POLE = 0.999  # the DC blocker's pole: a corner at 2.5 Hz at 16 kHz, a time constant of 62 ms
# --remove-hum's notch filters: the mains frequency and its multiples up to the HUM_NOTCHES-th
# (the hum of training's noise kind has as many, speechrnn.data.HUM_HARMONICS), each HUM_Q
# times narrower than its frequency (1.7 Hz wide at 50 Hz). Trial on AN4 dev (session 65): Q 30
# took back most of the streaming model's loss to hum at a cost on clean speech; a constant
# width did worse for it.
HUM_NOTCHES = 8
HUM_Q = 30.0
MAINS_HZ = (50.0, 60.0)  # the mains frequencies a hum is looked for at
# hum_level: how far a frequency's peak stands over its neighbourhood to count as a tone, and
# how loud the tones must be for a warning. On AN4's 1020 recordings of a second or more
# (scripts/bench_hum.py, session 66) the warning named none as they are, whole or by their
# first second alone; with the robustness bench's hum added at -40 / -50 / -60 dB full scale,
# 97.4-97.5 / 78-80 / under 1% of them, always at the right frequency. Hum at -60 dB costs the
# bundled models nothing on AN4, at -50 the streaming model much (recipes/an4/RESULTS.md).
HUM_PROMINENCE_DB = 20.0
HUM_WARNING_DB = -60.0
HUM_SECONDS = 30  # hum is steady: a recording's first 30 s tell (and a long one costs no more)
STDIN = "-"  # the path that names standard input (e.g. ``ffmpeg -i talk.m4a -f wav - | speechrnn transcribe -``)
STDIN_NAME = "- (standard input)"  # how errors name it


class AudioError(ValueError):
    """An audio input that cannot be used; the message names the input and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file that libsndfile understands (WAV, FLAC, OGG, ...).

    Args:
        path: the file, or ``-`` for standard input (read whole).
        sample_rate: rate of the returned samples; the file is resampled to it.

    Returns:
        ``(N,)`` float32 mono samples.

    Raises:
        AudioError: the file is missing, unreadable, not audio, empty, too short or has
            non-finite samples.
    """
    source = os.fspath(path)
    if source == STDIN:
        name, file = STDIN_NAME, io.BytesIO(_stdin_bytes())  # libsndfile seeks, which a pipe cannot
    else:
        if not os.path.exists(source):
            raise AudioError(source, "no such file")
        if os.path.isdir(source):
            raise AudioError(source, "is a directory, not an audio file")
        if os.path.isfile(source) and os.path.getsize(source) == 0:  # (a pipe's size says nothing)
            raise AudioError(source, "file is empty (0 bytes)")
        name, file = source, source
    try:
        samples, file_rate = sf.read(file, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        reason = str(error).replace(f"Error opening {file!r}: ", "") if not isinstance(file, str) else str(error)  # not the buffer's repr
        raise AudioError(name, f"not a readable audio file ({reason})") from None
    except OSError as error:
        raise AudioError(name, f"cannot read file ({error.strerror or error})") from None
    return prepare_samples(samples, file_rate, sample_rate, source=name)


def _stdin_bytes() -> bytes:
    """Standard input read whole, for one audio file (a WAV piped by a tool that did not know
    its length, whose header says 0xFFFFFFFF as ffmpeg's does, reads to its end)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise AudioError(STDIN_NAME, "nothing piped in (e.g. ffmpeg -i talk.m4a -f wav - | speechrnn transcribe -)")
    data = sys.stdin.buffer.read()
    if not data:
        raise AudioError(STDIN_NAME, "no bytes piped in (it is read once: give - once)")
    return data


def prepare_samples(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int = SAMPLE_RATE,
    source: str = "<array>",
    min_duration: float = MIN_DURATION,
) -> np.ndarray:
    """Turn samples of any layout into mono float32 at ``target_rate``.

    Args:
        samples: ``(N,)`` or ``(N, C)`` samples; integer types are scaled to [-1, 1].
        sample_rate: rate of ``samples`` in Hz.
        target_rate: rate of the result in Hz.
        source: name used in error messages.
        min_duration: shortest accepted duration in seconds (0 accepts anything).

    Returns:
        ``(M,)`` float32 mono samples.
    """
    try:
        samples = to_mono_float32(samples)
    except ValueError as error:
        raise AudioError(source, str(error)) from None
    if samples.size == 0:
        raise AudioError(source, "contains no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(source, "contains NaN or infinite samples")
    if sample_rate <= 0:
        raise AudioError(source, f"invalid sample rate {sample_rate}")
    duration = samples.size / sample_rate
    if duration < min_duration:
        raise AudioError(source, f"too short ({duration:.3f} s; at least {min_duration} s needed)")
    return resample(samples, sample_rate, target_rate)


class DCBlocker:
    """Takes a constant offset (DC) out of a stream of samples: the one-pole high-pass
    ``y[n] = x[n] - x[n-1] + DC_POLE * y[n-1]`` (scipy.signal.lfilter, in float64), its state
    carried from one chunk to the next, so a stream cut anywhere gives the samples of the whole
    signal through it. The filter starts at rest: an offset present from the first sample falls
    to a twentieth of itself in the output within 0.2 s (three time constants). Below 20 Hz, where the frontend's
    mel filters begin (``FrontendConfig.f_min``), speech is left as it was but for a few tenths of a dB.

    Example:
        >>> blocker = DCBlocker()
        >>> out = np.concatenate([blocker(np.full(8000, 0.1, np.float32)) for _ in range(2)])
        >>> bool(abs(out[-1]) < 1e-6)
        True
    """

    def __init__(self, pole: float = DC_POLE):
        self._b, self._a = np.array([1.0, -1.0]), np.array([1.0, -pole])
        self._state = np.zeros(1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """``(N,)`` float samples, the stream's next -> ``(N,)`` float32 without their offset."""
        from scipy.signal import lfilter

        if samples.size == 0:
            return np.asarray(samples, dtype=np.float32)
        out, self._state = lfilter(self._b, self._a, np.asarray(samples, dtype=np.float64), zi=self._state)
        return out.astype(np.float32)


def remove_dc(samples: np.ndarray) -> np.ndarray:
    """``(N,)`` samples of a whole signal through a fresh :class:`DCBlocker`."""
    return DCBlocker()(samples)


class HumFilter:
    """Takes mains hum out of a stream of samples: notches at ``hz`` and its multiples up to the
    ``notches``-th (below half the sample rate), each of quality factor ``q``
    (scipy.signal.iirnotch), run as second-order sections in float64 (scipy.signal.sosfilt) with
    their state carried from one chunk to the next, so a stream cut anywhere gives the samples
    of the whole signal through it, as :class:`DCBlocker` does.

    Example:
        >>> t = np.arange(32000) / 16000
        >>> hum = HumFilter(50.0)
        >>> out = np.concatenate([hum(0.01 * np.sin(2 * np.pi * 150 * t[i:i + 1600])) for i in range(0, 32000, 1600)])
        >>> bool(np.abs(out[-8000:]).max() < 1e-4)
        True
    """

    def __init__(self, hz: float, sample_rate: int = SAMPLE_RATE, notches: int = HUM_NOTCHES, q: float = HUM_Q):
        from scipy.signal import iirnotch, tf2sos

        if isinstance(hz, bool) or not (isinstance(hz, numbers.Real) and 0 < hz < sample_rate / 2):
            raise ValueError(f"the mains frequency must be a number of Hz between 0 and {sample_rate / 2:g}, got {hz!r}")
        self.hz = float(hz)
        self._sos = np.concatenate([tf2sos(*iirnotch(k * hz, q, fs=sample_rate)) for k in range(1, notches + 1) if k * hz < sample_rate / 2])
        self._state = np.zeros((self._sos.shape[0], 2))

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """``(N,)`` float samples, the stream's next -> ``(N,)`` float32 without the hum."""
        from scipy.signal import sosfilt

        if samples.size == 0:
            return np.asarray(samples, dtype=np.float32)
        out, self._state = sosfilt(self._sos, np.asarray(samples, dtype=np.float64), zi=self._state)
        return out.astype(np.float32)


class InputFilter:
    """The clean-up a recording may be asked for before recognition, as one stream filter:
    its DC offset out (:class:`DCBlocker`, ``remove_dc``), then mains hum at ``remove_hum`` Hz
    (:class:`HumFilter`; None: left). ``filter(samples)`` of a fresh one reads a whole signal;
    a stream calls one with its chunks in order."""

    def __init__(self, remove_dc: bool = False, remove_hum: float | None = None, sample_rate: int = SAMPLE_RATE):
        self._steps = ([DCBlocker()] if remove_dc else []) + ([HumFilter(remove_hum, sample_rate)] if remove_hum is not None else [])

    def __bool__(self) -> bool:
        return bool(self._steps)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        for step in self._steps:
            samples = step(samples)
        return samples


def hum_level(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, float] | None:
    """The mains hum in ``(N,)`` samples: ``(hz, db)``, its frequency (of :data:`MAINS_HZ`) and
    the RMS level of its tones (the fundamental and its multiples up to the
    :data:`HUM_NOTCHES`-th that stand out as tones) in dB full scale; None where neither
    fundamental stands out, or for less than a second. (Speech stands out at a multiple now and
    then, a voice's pitch held at 100 or 150 Hz; on AN4, never at 50 or 60 Hz.) A frequency
    stands out where the peak of its band of the averaged 1 Hz spectrum (Welch's, of 1 s segments) is
    :data:`HUM_PROMINENCE_DB` over the median of the band's neighbourhood: a steady tone does,
    speech, whose pitch moves, and noise do not. A tone's power is what its band holds over that
    median; of the two frequencies, the one with the more powerful tones is named."""
    samples = np.asarray(samples[: HUM_SECONDS * sample_rate], dtype=np.float64)
    if samples.size < sample_rate:
        return None
    frequencies, multiples, band, in_band, ring = _hum_bins()
    density = _low_spectrum(samples, sample_rate, int(ring.max()) + 1)
    floor = np.median(density[ring], axis=1)
    tone = np.where(in_band, density[band], 0.0).max(axis=1) >= floor * 10 ** (HUM_PROMINENCE_DB / 10)
    excess = np.sum(np.where(in_band, density[band] - floor[:, None], 0.0), axis=1)
    powers = {hz: float(excess[tone & (frequencies == hz)].sum()) for hz in MAINS_HZ if (tone & (multiples == 1) & (frequencies == hz)).any()}
    if not powers:
        return None
    hz = max(powers, key=powers.get)
    return hz, float(10 * np.log10(max(powers[hz], 1e-30)))


@lru_cache(maxsize=1)
def _hum_bins() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each multiple (up to the HUM_NOTCHES-th) of each of MAINS_HZ, a row of
    :func:`hum_level`'s 1 Hz bins: its mains frequency, which multiple it is, its band's bins
    (padded; ``in_band`` marks the real ones) and the ten bins each side of the band, two bins
    out, its neighbourhood."""
    rows = []
    for hz in MAINS_HZ:
        for k in range(1, HUM_NOTCHES + 1):
            centre, half = round(k * hz), 1 + (k + 1) // 2  # (a grid's drift of 0.5 Hz moves the k-th multiple by k / 2)
            ring = [*range(centre - half - 12, centre - half - 2), *range(centre + half + 3, centre + half + 13)]
            rows.append((hz, k, list(range(centre - half, centre + half + 1)), ring))
    width = max(len(band) for _, _, band, _ in rows)
    band = np.array([b + [b[0]] * (width - len(b)) for _, _, b, _ in rows])
    in_band = np.array([[i < len(b) for i in range(width)] for _, _, b, _ in rows])
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), band, in_band, np.array([r[3] for r in rows])


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` points, as ``scipy.signal.get_window("hann", n)`` makes
    it (here in NumPy: importing scipy.signal would cost every `speechrnn transcribe` 0.8 s,
    by ``python -X importtime``, and only the hum check needs it)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _low_spectrum(samples: np.ndarray, sample_rate: int, top: int) -> np.ndarray:
    """The first ``top`` bins (bin i: i Hz) of the power spectral density of ``(N,)`` float64
    samples, N at least ``sample_rate``, as ``scipy.signal.welch(samples, sample_rate,
    nperseg=sample_rate, noverlap=0)`` gives it: one-second Hann segments end to end, each less
    its mean. Written here because welch's own overhead would have been most of what the
    warning costs (welch 3.2 ms an AN4 recording, the whole check 0.9 ms:
    scripts/bench_hum.py, session 66); tests/test_audio.py checks it against welch."""
    window = _hann(sample_rate)
    segments = samples[: samples.size // sample_rate * sample_rate].reshape(-1, sample_rate)
    segments = segments - segments.mean(axis=1, keepdims=True)
    power = np.mean(np.abs(np.fft.rfft(segments * window, axis=1)[:, :top]) ** 2, axis=0)
    power[1:] *= 2  # (one-sided: the negative frequencies' half; bin 0 has none)
    return power / (sample_rate * np.sum(window ** 2))


def hum_warning(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, removed: float | None = None) -> str | None:
    """What to tell of an input with mains hum at :data:`HUM_WARNING_DB` or louder (None:
    nothing), as :func:`dc_offset_warning` does of an offset; nothing where it is at
    ``removed`` Hz, the frequency ``--remove-hum`` takes out (within 1 Hz)."""
    hum = hum_level(samples, sample_rate)
    if hum is None or hum[1] < HUM_WARNING_DB or (removed is not None and abs(hum[0] - removed) < 1):
        return None
    hz, db = hum
    return f"mains hum at {hz:g} Hz ({db:.0f} dB full scale RMS) costs accuracy; --remove-hum {hz:g} takes it out"


def input_warnings(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, remove_dc: bool = False, remove_hum: float | None = None) -> dict[str, str]:
    """What to tell of ``(N,)`` samples that an :class:`InputFilter` of these options would
    not mend, by kind: ``"dc offset"`` (:func:`dc_offset_warning`), ``"hum"`` (:func:`hum_warning`:
    hum at another frequency than ``remove_hum`` too)."""
    told = {
        "dc offset": None if remove_dc else dc_offset_warning(float(np.mean(samples, dtype=np.float64))),
        "hum": hum_warning(samples, sample_rate, removed=remove_hum),
    }
    return {kind: message for kind, message in told.items() if message}


def dc_offset_warning(offset: float) -> str | None:
    """What to tell of an input whose mean sample is ``offset`` (``None``: nothing, it is under
    :data:`DC_WARNING`); files and live streams say it the same way, after their names."""
    if abs(offset) <= DC_WARNING:
        return None
    return f"a DC offset of {offset:+.4f} (full scale 1) costs accuracy; --remove-dc takes it out"


def to_mono_float32(samples) -> np.ndarray:
    """``(N,)`` or ``(N, C)`` samples of any numeric type -> ``(N,)`` float32 (channels averaged)."""
    samples = to_float32(np.asarray(samples))
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        # (C, N), as torchaudio.load returns, would be read as C samples of N channels.
        raise ValueError(f"expected samples of shape (N,) or (N, C), got {samples.shape}: {samples.shape[1]} channels? (channel-first samples need transposing)")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise ValueError(f"expected samples of shape (N,) or (N, C), got {samples.shape}")
    return samples


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Scale integer PCM to [-1, 1] float32; float input is only cast."""
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        if info.min == 0:  # unsigned (8-bit WAV): silence sits at the middle of the range
            offset = scale = (info.max + 1) // 2
        else:
            offset, scale = 0, -info.min
        return ((samples.astype(np.float64) - offset) / scale).astype(np.float32)
    return samples.astype(np.float32, copy=False)


# torchaudio's windowed-sinc kernel has a row of taps for each of the reduced ratio's output
# phases, so its size grows with the product of the reduced rates: for the usual rates (44.1,
# 48, 22.05, 8 kHz: reduced 441/160, 3/1, 441/320, 1/2) it is small, but a rate sharing no
# factor with 16 kHz (11127 Hz, 44101 Hz) would need gigabytes. Beyond this reduced rate, soxr
# (the streaming path's resampler) does it in constant memory.
MAX_KERNEL_RATE = 1000


def resample(samples: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling: torchaudio's windowed sinc, or soxr for rates whose reduced
    ratio would make that kernel huge (:data:`MAX_KERNEL_RATE`)."""
    if orig_rate == new_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    kernel_rates = _reduced_rates(int(orig_rate), int(new_rate))
    if max(kernel_rates) > MAX_KERNEL_RATE:
        import soxr

        return soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), orig_rate, new_rate).astype(np.float32, copy=False)
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), *kernel_rates)
    return out.numpy().astype(np.float32, copy=False)


@lru_cache(maxsize=32)
def _reduced_rates(orig_rate: int, new_rate: int) -> tuple[int, int]:
    # torchaudio builds its kernel from the reduced ratio anyway; reducing here keeps the cache small.
    g = gcd(orig_rate, new_rate)
    return orig_rate // g, new_rate // g
