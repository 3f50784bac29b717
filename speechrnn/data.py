"""Datasets, manifests, length-bucketed batching and augmentation.

A manifest is a JSON-lines file, one utterance a line::

    {"audio": "path/to/file.wav", "text": "the transcript", "duration": 2.3, "speaker": "fash"}

Relative audio paths are taken relative to the manifest's folder. ``duration`` and
``speaker`` are optional (a missing duration is read from the file header). Transcripts are
read as the models spell them (:func:`speechrnn.text.normalize_text`: lower case, no
punctuation), so "Hello, World!" is scored as "hello world".
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import soundfile as sf
import torch
import torchaudio.functional as AF

from .audio import SAMPLE_RATE, AudioError, load_audio
from .files import write_atomic
from .reverb import response_bank, reverberate
from .text import normalize_text, unspellable

DEFAULT_AN4 = Path(os.environ.get("SPEECHRNN_AN4", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "an4"))


@dataclass
class Utterance:
    audio: str
    text: str
    duration: float = 0.0
    speaker: str = ""


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSON-lines manifest: one ``{"audio": PATH, "text": WORDS, "duration": SECONDS}``
    object a line (``duration`` optional, ``speaker`` too; a relative path is relative to the
    manifest). A bad line (not such an object, a value of the wrong type, a missing audio
    file, a duration that is not a number of seconds) raises ``ValueError`` naming the file
    and line (every line is read first: with more than one bad, the first few are named, and
    how many); transcripts with characters the models cannot spell (digits, "&", "東") are kept
    without them, with a warning."""
    path = Path(path)
    utterances, unspelled = [], Counter()
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(enumerate(f, 1))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    bad = []
    for line_no, line in lines:
        if not line.strip():
            continue
        try:
            utterances.append(_manifest_line(path, line_no, line, unspelled))
        except ValueError as error:
            bad.append(str(error))
    if len(bad) == 1:
        raise ValueError(bad[0])
    if bad:  # every line is read, so that a manifest is mended in one go rather than a line per run
        more = f"; and {len(bad) - UNREADABLE_SHOWN} more" if len(bad) > UNREADABLE_SHOWN else ""
        raise ValueError(f"{path}: {len(bad)} bad lines: " + "; ".join(bad[:UNREADABLE_SHOWN]) + more)
    if unspelled:
        shown = "".join(c for c, _ in unspelled.most_common(12))
        warnings.warn(
            f"{path}: transcripts hold characters the models cannot spell ({shown!r}: digits, symbols read as words, letters outside a-z): "
            "they are left out of the text (write numbers and symbols as words)",
            stacklevel=2,
        )
    return utterances


def _manifest_line(path: Path, line_no: int, line: str, unspelled: Counter) -> Utterance:
    """Line ``line_no`` of manifest ``path`` as an :class:`Utterance` (a ValueError naming the
    file and line where it is bad); the characters it cannot spell are counted into ``unspelled``."""
    where = f"{path}:{line_no}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not a JSON object ({error})") from None
    if not isinstance(row, dict) or not isinstance(row.get("audio"), str) or not isinstance(row.get("text"), str):
        raise ValueError(f"{where}: not a manifest line: a JSON object with 'audio' (a path) and 'text' (a string) is expected, got {line.strip()[:80]!r}")
    unspelled.update(unspellable(row["text"]))
    text = normalize_text(row["text"])
    audio = Path(row["audio"])
    if not audio.is_absolute():
        audio = path.parent / audio
    if not audio.is_file():
        raise ValueError(f"{where}: no such audio file: {audio}")
    duration = row.get("duration") or 0.0
    try:  # a number, or a string of one; not true/false, a list or an object
        duration = float(duration) if isinstance(duration, (int, float, str)) and not isinstance(duration, bool) else math.nan
    except ValueError:
        duration = math.nan
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"{where}: duration {row.get('duration')!r} is not a number of seconds")
    if not duration:
        try:
            duration = sf.info(str(audio)).duration
        except (RuntimeError, OSError) as error:  # soundfile's errors are RuntimeErrors
            raise ValueError(f"{where}: no duration given, and {audio} cannot be read for one ({error})") from None
    return Utterance(str(audio), text, float(duration), str(row.get("speaker", "")))


def read_durations(paths: Sequence[str | os.PathLike], known: dict[str, float] | None = None, workers: int = 8) -> list[float | None]:
    """Seconds of audio in each file, from its header (or from ``known``, by file name, for an
    existing file); ``None`` for a missing or unreadable file, with a warning on stderr naming
    it. Headers are read in ``workers`` threads: on network storage each read mostly waits."""

    def duration(path: str | os.PathLike) -> float | None:
        path = Path(path)
        if known and path.name in known and path.is_file():
            return known[path.name]
        try:
            return sf.info(str(path)).duration
        except (RuntimeError, OSError) as error:  # soundfile's errors are RuntimeErrors
            print(f"warning: {path}: left out ({error})", file=sys.stderr)
            return None

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(duration, paths))


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """A JSON-lines manifest of ``utterances``, as :func:`read_manifest` reads it (whole or not at all)."""
    write_atomic(path, "".join(json.dumps(asdict(utt)) + "\n" for utt in utterances))


def an4_utterances(root: str | os.PathLike, split: str) -> list[Utterance]:
    """Utterances of CMU's AN4 corpus (``split`` is ``train`` or ``test``)."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"AN4 split must be 'train' or 'test', got {split!r}")
    fileids = root / "etc" / f"an4_{split}.fileids"
    transcripts = root / "etc" / f"an4_{split}.transcription"
    if not fileids.is_file() or not transcripts.is_file():
        raise FileNotFoundError(f"{root}: not an AN4 folder (missing {fileids.name} or {transcripts.name})")
    ids = fileids.read_text().split()
    lines = [line for line in transcripts.read_text().splitlines() if line.strip()]
    if len(ids) != len(lines):
        raise ValueError(f"{root}: {len(ids)} file ids but {len(lines)} transcripts")
    utterances = []
    for file_id, line in zip(ids, lines):
        utt_id = line.rsplit("(", 1)[-1].rstrip(") ")
        if not file_id.endswith(utt_id):
            raise ValueError(f"{transcripts}: transcript {utt_id!r} does not match file id {file_id!r}")
        audio = root / "wav" / f"{file_id}.wav"
        utterances.append(Utterance(str(audio), normalize_text(line), sf.info(str(audio)).duration, file_id.split("/")[1]))
    return utterances


def speaker_split(utterances: Sequence[Utterance], n_dev_speakers: int, seed: int = 0) -> tuple[list[Utterance], list[Utterance]]:
    """Split into (train, dev) with no speaker in both; dev gets ``n_dev_speakers`` speakers."""
    speakers = sorted({u.speaker for u in utterances})
    if n_dev_speakers >= len(speakers):
        raise ValueError(f"cannot hold out {n_dev_speakers} of {len(speakers)} speakers")
    dev_speakers = set(random.Random(seed).sample(speakers, n_dev_speakers))
    train = [u for u in utterances if u.speaker not in dev_speakers]
    dev = [u for u in utterances if u.speaker in dev_speakers]
    return train, dev


AN4_DEV_SPEAKERS = 6  # speakers of AN4 train held out as the dev set


def an4_dev_split(root: str | os.PathLike, n_dev_speakers: int = AN4_DEV_SPEAKERS) -> list[Utterance]:
    """The dev set recipes/an4 holds out of AN4 train (speaker-disjoint, seed 0)."""
    return speaker_split(an4_utterances(root, "train"), n_dev_speakers, seed=0)[1]


def an4_eval_split(root: str | os.PathLike, split: str) -> list[Utterance]:
    """What models are compared (``dev``: :func:`an4_dev_split`) or reported (``test``) on."""
    if split not in ("dev", "test"):
        raise ValueError(f"evaluation split must be 'dev' or 'test', got {split!r}")
    return an4_dev_split(root) if split == "dev" else an4_utterances(root, "test")


def an4_train_split(root: str | os.PathLike, n_dev_speakers: int = AN4_DEV_SPEAKERS) -> list[Utterance]:
    """What recipes/an4 trains on (and builds its LM from): AN4 train without the dev split."""
    return speaker_split(an4_utterances(root, "train"), n_dev_speakers, seed=0)[0]


def load_waves(utterances: Sequence[Utterance], progress: bool = False) -> list[torch.Tensor]:
    """Read every utterance into memory as 16 kHz float32 tensors. Every file is tried: those
    that cannot be read are named together in one :class:`AudioError` (the first few, and how
    many), so that a set is mended in one go rather than a file per run."""
    from tqdm import tqdm

    waves, failed = [], []
    for u in tqdm(utterances, desc="loading audio", disable=not progress, leave=False):
        try:
            waves.append(torch.from_numpy(load_audio(u.audio)))
        except AudioError as error:
            failed.append(error)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        shown = "; ".join(map(str, failed[:UNREADABLE_SHOWN])) + (f"; and {len(failed) - UNREADABLE_SHOWN} more" if len(failed) > UNREADABLE_SHOWN else "")
        raise AudioError(f"{len(failed)} of {len(utterances)} audio files cannot be read", shown)
    return waves


UNREADABLE_SHOWN = 5  # unreadable files (load_waves) or bad manifest lines (read_manifest) named one by one


class DiskWaves:
    """Training audio too large for memory: ``waves[i]`` reads utterance ``i`` from its file
    (16 kHz float32 tensor) each time it is asked for; ``AudioError`` names a bad file."""

    def __init__(self, utterances: Sequence[Utterance]):
        self.utterances = list(utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(load_audio(self.utterances[index].audio))

    def lengths(self) -> list[int]:
        """Samples at 16 kHz of each utterance, from its duration (read from the file's header
        where the manifest gave none; an unreadable file, warned about, counts as empty)."""
        missing = [i for i, u in enumerate(self.utterances) if not u.duration]
        read = dict(zip(missing, read_durations([self.utterances[i].audio for i in missing])))
        durations = [(read[i] or 0.0) if i in read else u.duration for i, u in enumerate(self.utterances)]
        return [round(seconds * SAMPLE_RATE) for seconds in durations]


def length_batches(lengths: Sequence[float], batch_size: int, generator: random.Random | None = None) -> list[list[int]]:
    """Group indices of similar length into batches; shuffled (within ties and in batch
    order) when a generator is given."""
    order = list(range(len(lengths)))
    if generator is not None:
        generator.shuffle(order)  # breaks ties between equal lengths differently each epoch
    order.sort(key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if generator is not None:
        generator.shuffle(batches)
    return batches


def pad_waves(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(N_i,)`` -> ``(B, max N)`` zero-padded and ``(B,)`` lengths."""
    lens = torch.tensor([w.shape[0] for w in waves])
    return torch.nn.utils.rnn.pad_sequence(list(waves), batch_first=True), lens


# Additive noise: white, power-law (see coloured_noise) or babble.
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power falls as f ** -exponent
NOISE_TYPES = (*NOISE_EXPONENTS, "babble", "hum")
HUM_HARMONICS = 8  # mains hum's tones: the mains frequency and its multiples up to this one
BABBLE_TALKERS = (3, 6)  # babble is this many recordings at once (drawn uniformly)
LEAD_IN_DB = (-75.0, -45.0)  # a lead-in's noise level, dB full scale RMS (drawn uniformly)


@dataclass(frozen=True)
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation factors, drawn uniformly
    noise_prob: float = 0.3  # chance of adding noise (noise_types, below) to an utterance
    snr_db: tuple[float, float] = (15.0, 40.0)  # range of signal-to-noise ratios for that noise
    gain_db: tuple[float, float] = (-10.0, 6.0)  # random level change
    narrowband_prob: float = 0.15  # chance of a round trip through 8 kHz (telephone-band audio)
    # Chance of hearing an utterance through a simulated room, one of a fixed bank of 256
    # (speechrnn.reverb.response_bank) whose reverberation times are drawn from rt60 (seconds).
    # 0: off, and no random draw, so earlier recipes repeat bit for bit.
    reverb_prob: float = 0.0
    rt60: tuple[float, float] = (0.2, 0.8)
    n_freq_masks: int = 2
    max_freq_width: int = 15  # mel bins
    n_time_masks: int = 2
    max_time_width: int = 25  # frames
    max_time_ratio: float = 0.2  # a time mask covers at most this share of the utterance
    # Chance that a training example is an utterance followed by 1 to concat_max - 1 others drawn
    # at random, their transcripts joined: recordings longer than one short command then look
    # like something the model was trained on (see concatenation_groups).
    concat_prob: float = 0.0
    concat_max: int = 3
    # Dither: white noise at a level drawn from this range (dB relative to full scale) added to
    # every example after its gain, so the log-mel bins near the log's fixed floor (about a
    # tenth of AN4's) carry recording noise of random level rather than one recording chain's
    # exact floor. None: off, and no random draw, so earlier recipes repeat bit for bit.
    dither_db: tuple[float, float] | None = None
    # Vocal tract length perturbation: each example's spectrum is stretched along the frequency
    # axis by a factor drawn from this range (see vtlp_filterbank), as a speaker with a shorter
    # or longer vocal tract would move the formants, without changing the speaking rate as speed
    # perturbation does. None: off, and no random draw, so earlier recipes repeat bit for bit.
    vtlp: tuple[float, float] | None = None
    # The kinds of noise ``noise_prob`` adds, one drawn per noisy example: white, pink, brown
    # (NOISE_EXPONENTS), babble (other recordings of the batch talking at once, see babble) or
    # hum (mains hum, see mains_hum).
    # White alone draws nothing more, so earlier recipes repeat bit for bit.
    noise_types: tuple[str, ...] = ("white",)
    # Chance of hearing an utterance through a random microphone and channel (random_equalizer:
    # EQ_BANDS peaking filters, each of a gain drawn from -eq_db..eq_db dB). 0: off, and no
    # random draw, so earlier recipes repeat bit for bit.
    eq_prob: float = 0.0
    eq_db: float = 12.0
    # Chance that an example starts after a lead-in: 0 to lead_in_max seconds (drawn uniformly)
    # of faint white noise (LEAD_IN_DB) before the speech, as a microphone hears its room before
    # the talker starts; the lead-in then meets the example's room, band, microphone, gain and
    # noise as the speech does. 0: off, and no random draw, so earlier recipes repeat bit for bit.
    lead_in_prob: float = 0.0
    lead_in_max: float = 2.4  # seconds (the streaming recognizer's EndpointConfig.no_speech)

    def __post_init__(self):
        if not 0.0 <= self.concat_prob <= 1.0 or self.concat_max < 2:
            raise ValueError(f"concat_prob must be in 0..1 and concat_max >= 2, got {self.concat_prob} and {self.concat_max}")
        if not 0.0 <= self.reverb_prob <= 1.0 or not 0.0 < self.rt60[0] <= self.rt60[1]:
            raise ValueError(f"reverb_prob must be in 0..1 and rt60 a range (low, high) of positive seconds, got {self.reverb_prob} and {self.rt60}")
        if not self.snr_db[0] <= self.snr_db[1]:
            raise ValueError(f"snr_db must be a range (low, high) of dB with low <= high, got {self.snr_db}")
        if self.dither_db is not None and not self.dither_db[0] <= self.dither_db[1] < 0:
            raise ValueError(f"dither_db must be a range (low, high) of negative dB with low <= high, got {self.dither_db}")
        if self.vtlp is not None and not 0.5 <= self.vtlp[0] <= self.vtlp[1] <= 2.0:
            raise ValueError(f"vtlp must be a range (low, high) of warp factors in 0.5..2 with low <= high, got {self.vtlp}")
        if not 0.0 <= self.eq_prob <= 1.0 or self.eq_db < 0:
            raise ValueError(f"eq_prob must be in 0..1 and eq_db at least 0, got {self.eq_prob} and {self.eq_db}")
        if not 0.0 <= self.lead_in_prob <= 1.0 or self.lead_in_max <= 0:
            raise ValueError(f"lead_in_prob must be in 0..1 and lead_in_max positive seconds, got {self.lead_in_prob} and {self.lead_in_max}")
        unknown = [kind for kind in self.noise_types if kind not in NOISE_TYPES]
        if not self.noise_types or unknown:
            raise ValueError(f"noise_types must be one or more of {', '.join(NOISE_TYPES)}, got {self.noise_types}")


def concatenation_groups(n_utterances: int, config: AugmentConfig, rng: random.Random) -> list[list[int]]:
    """An epoch's training examples as lists of utterance indices: every utterance once, in a
    random order, alone or (with chance ``config.concat_prob`` per example) with 1 to
    ``config.concat_max - 1`` of the next ones after it, to be joined into one recording.

    A bidirectional model trained only on single short utterances reads them well and reads the
    same utterances badly once they follow one another in one recording (the bundled offline model
    of sessions 4-13: AN4 dev 14.00% WER one utterance per file, 20.09% two per file, 25.73%
    five per file); examples of several utterances in a row teach it speech that goes on. Each
    utterance still comes once per epoch, so an epoch costs what it did.
    """
    order = list(range(n_utterances))
    rng.shuffle(order)
    groups, k = [], 0
    while k < n_utterances:
        size = rng.randint(2, config.concat_max) if rng.random() < config.concat_prob else 1
        groups.append(order[k : k + size])
        k += size
    return groups


def perturb_wave(wave: torch.Tensor, config: AugmentConfig, rng: random.Random, others: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Speed perturbation, a lead-in, room reverberation, band limiting, a random microphone's
    frequency response, gain, dither and additive noise on one ``(N,)`` waveform; ``others`` (other
    recordings, e.g. the rest of its batch) are the talkers of babble noise, which falls back to
    white noise without them."""
    speed = rng.choice(config.speeds)
    if speed != 1.0:
        # Playing ``speed`` times faster is resampling by 1/speed and keeping the nominal rate.
        wave = AF.resample(wave, int(round(speed * 100)), 100)
    if config.lead_in_prob > 0 and rng.random() < config.lead_in_prob:
        seconds, draw = rng.uniform(0.0, config.lead_in_max), torch.Generator().manual_seed(rng.getrandbits(31))
        wave = with_lead_in(wave, seconds, 10 ** (rng.uniform(*LEAD_IN_DB) / 20), draw)
    if config.reverb_prob > 0 and rng.random() < config.reverb_prob:
        rooms = response_bank(config.rt60)
        wave = reverberate(wave, rooms[rng.randrange(len(rooms))])
    if rng.random() < config.narrowband_prob:
        # Audio recorded at 8 kHz and resampled to 16 kHz has nothing above 4 kHz.
        wave = AF.resample(AF.resample(wave, 2, 1), 1, 2)[: wave.shape[0]]
    if config.eq_prob > 0 and rng.random() < config.eq_prob:
        wave = random_equalizer(wave, rng, config.eq_db)
    wave = wave * 10 ** (rng.uniform(*config.gain_db) / 20)
    if config.dither_db is not None:
        dither = _white_noise(wave, rng)
        wave = wave + dither * 10 ** (rng.uniform(*config.dither_db) / 20)
    if rng.random() < config.noise_prob:
        power = wave.pow(2).mean().clamp(min=1e-10)
        snr = 10 ** (rng.uniform(*config.snr_db) / 10)
        wave = wave + _noise(wave, config.noise_types, rng, others) * (power / snr).sqrt()
    return wave.clamp(-1.0, 1.0)


# Peaking filters of a random microphone and channel, and their centres' range (Hz): below it
# the AN4 recordings hold hum, above it the 16 kHz audio ends.
EQ_BANDS = (2, 4)
EQ_CENTRES = (100.0, 6000.0)


def random_equalizer(wave: torch.Tensor, rng: random.Random, max_db: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``wave`` through a random frequency response, as a microphone, its placement and the
    channel after it colour speech: 2 to 4 peaking filters (torchaudio's biquads), each centred
    at a frequency drawn log-uniformly from EQ_CENTRES, of a gain drawn from -max_db..max_db dB
    and a width (Q) from 0.5..2, one after another."""
    low, high = EQ_BANDS
    for _ in range(rng.randint(low, high)):
        centre = math.exp(rng.uniform(*map(math.log, EQ_CENTRES)))
        wave = AF.equalizer_biquad(wave, sample_rate, centre, rng.uniform(-max_db, max_db), rng.uniform(0.5, 2.0))
    return wave


def _noise(like: torch.Tensor, kinds: tuple[str, ...], rng: random.Random, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """Unit-power noise shaped as ``like``, of a kind drawn from ``kinds`` (white alone: no draw)."""
    kind = kinds[0] if len(kinds) == 1 else rng.choice(kinds)
    if kind == "babble" and others:
        return babble(others, like.shape[0], rng)
    if kind == "hum":
        return mains_hum(like.shape[0], rng)
    if kind in ("white", "babble"):
        return _white_noise(like, rng)
    generator = torch.Generator().manual_seed(rng.getrandbits(31))
    return coloured_noise(like.shape[0], NOISE_EXPONENTS[kind], generator)


def mains_hum(n: int, rng: random.Random, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``n`` samples of unit-power mains hum, as a ground loop adds to a recording: 50 or 60 Hz
    (give or take 0.5 Hz, as grids drift) and its multiples up to the HUM_HARMONICS-th, each of a
    random gain (falling with its order, by a random power) and phase."""
    hz = rng.choice((50.0, 60.0)) + rng.uniform(-0.5, 0.5)
    fall = rng.uniform(0.0, 1.5)
    partials = []
    for k in range(1, HUM_HARMONICS + 1):
        gain = rng.uniform(0.2, 1.0) * k ** -fall
        partials.append((k, gain, rng.uniform(0, 2 * torch.pi)))
    hum = harmonics(n, hz, partials, sample_rate)
    return (hum / hum.pow(2).mean().sqrt()).float()


def steady_hum(n: int, hz: float = 50.0, amplitude: float = 0.01, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``n`` samples of one fixed mains hum, the robustness benches': ``hz`` and its third and
    fifth multiples, at ``amplitude`` (0.01: -40 dB full scale), half and a quarter of it."""
    return (amplitude * harmonics(n, hz, ((1, 1.0, 0.0), (3, 0.5, 0.0), (5, 0.25, 0.0)), sample_rate)).float()


def harmonics(n: int, hz: float, partials, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``n`` samples (float64) of the sum of sines at multiples of ``hz``: ``partials`` are
    ``(multiple, gain, phase)``; training's random hum and the robustness bench's fixed one."""
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    return sum(gain * torch.sin(2 * torch.pi * k * hz * t + phase) for k, gain, phase in partials)


def with_lead_in(wave: torch.Tensor, seconds: float, rms: float, generator: torch.Generator) -> torch.Tensor:
    """``(N,)`` ``wave`` after ``seconds`` of white noise of RMS ``rms`` drawn from ``generator``:
    the room a microphone hears before the talker starts (training's lead-ins, the benches'
    lead-in and pauses)."""
    return torch.cat([rms * torch.randn(round(seconds * SAMPLE_RATE), generator=generator), wave])


def _white_noise(like: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Unit-variance Gaussian noise shaped as ``like``, seeded from ``rng`` (one draw of it)."""
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(rng.getrandbits(31)))


# Power-law noise is written here: it is white noise whose spectrum is scaled by f ** (-exponent
# / 2), one multiply between torch's FFTs, drawn from the recipe's seeded generator; the packages
# that offer it (colorednoise, audiomentations) draw from numpy's and would be a dependency for
# those few lines.
def coloured_noise(n: int, exponent: float, generator: torch.Generator, sample_rate: int = SAMPLE_RATE, floor_hz: float = 20.0) -> torch.Tensor:
    """``(n,)`` Gaussian noise of unit power whose power spectrum falls as ``f ** -exponent``
    (0 white, 1 pink: equal power per octave, 2 brown: rumble), flat below ``floor_hz`` (below
    hearing, where a power law would otherwise put most of the power of long clips)."""
    white = torch.randn(n, generator=generator, dtype=torch.float64)
    freqs = torch.fft.rfftfreq(n, d=1 / sample_rate, dtype=torch.float64).clamp(min=floor_hz)
    shaped = torch.fft.irfft(torch.fft.rfft(white) * freqs.pow(-exponent / 2), n)
    return (shaped / shaped.pow(2).mean().sqrt().clamp(min=1e-30)).float()


def babble(others: Sequence[torch.Tensor], n: int, rng: random.Random, talkers: tuple[int, int] = BABBLE_TALKERS) -> torch.Tensor:
    """``(n,)`` babble of unit power: a number of recordings drawn from the range ``talkers``,
    each drawn from ``others`` (with replacement), at unit power, looped to ``n`` samples from a
    random start, summed."""
    out = torch.zeros(n)
    for _ in range(rng.randint(*talkers)):
        voice = others[rng.randrange(len(others))]
        voice = voice / voice.pow(2).mean().sqrt().clamp(min=1e-10)
        start = rng.randrange(voice.shape[0])
        looped = voice.roll(-start).repeat(n // voice.shape[0] + 1)[:n]
        out += looped
    return out / out.pow(2).mean().sqrt().clamp(min=1e-10)


# VTLP is written here because no maintained library offers it on a filterbank (torchaudio has
# none; the packages that do warp a waveform through their own spectrogram, a second frontend).
def vtlp_filterbank(filterbank: torch.Tensor, alpha: float, sample_rate: int, boundary_hz: float = 4800.0) -> torch.Tensor:
    """A ``(n_freqs, n_mels)`` mel filterbank over STFT bins 0..Nyquist, warped for vocal tract
    length perturbation (Jaitly and Hinton, 2013) by the factor ``alpha``.

    The frequency axis is mapped piecewise linearly: ``f -> alpha * f`` up to
    ``boundary_hz * min(alpha, 1) / alpha``, then a straight line to the Nyquist frequency, which
    stays where it is, so no energy leaves the band. Filter ``m`` of the warped bank weighs bin
    ``f`` as the original filter weighs frequency ``warp(f)`` (linear interpolation between
    bins): energy at ``f`` is read at ``warp(f)`` (``alpha * f`` below the knee), so ``alpha > 1``
    moves formants up as a shorter vocal tract does, and ``alpha < 1`` down. ``alpha == 1`` returns the bank
    itself.
    """
    if alpha == 1.0:
        return filterbank
    n_freqs = filterbank.shape[0]
    nyquist = sample_rate / 2
    bin_hz = nyquist / (n_freqs - 1)
    freqs = torch.arange(n_freqs, dtype=torch.float64, device=filterbank.device) * bin_hz
    knee = boundary_hz * min(alpha, 1.0) / alpha
    upper = nyquist - (nyquist - alpha * knee) / (nyquist - knee) * (nyquist - freqs)
    position = torch.where(freqs <= knee, alpha * freqs, upper) / bin_hz
    low = position.floor().long().clamp(0, n_freqs - 2)
    frac = (position - low).clamp(0.0, 1.0).to(filterbank.dtype)[:, None]
    return filterbank[low] * (1 - frac) + filterbank[low + 1] * frac


# SpecAugment is written here rather than taken from torchaudio's FrequencyMasking/TimeMasking:
# those size time masks by the padded batch length, not each utterance's own length, and draw
# from torch's global generator, while these draw from the epoch's seeded generator so that a
# resumed run repeats the same masks.
def mask_frequencies(log_mel: torch.Tensor, n_frames: int, config: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """SpecAugment frequency masks on one ``(T, n_mels)`` log-mel matrix (filled with the mean
    of its first ``n_frames`` frames, the utterance without padding)."""
    log_mel = log_mel.clone()
    fill = log_mel[:n_frames].mean() if n_frames > 0 else 0.0
    for _ in range(config.n_freq_masks):
        width = rng.randint(0, config.max_freq_width)
        start = rng.randint(0, max(0, log_mel.shape[1] - width))
        log_mel[:, start : start + width] = fill
    return log_mel


def mask_times(feats: torch.Tensor, n_frames: int, config: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """SpecAugment time masks on one ``(T, F)`` normalised feature matrix (filled with 0, the mean)."""
    feats = feats.clone()
    max_width = min(config.max_time_width, int(config.max_time_ratio * n_frames))
    for _ in range(config.n_time_masks):
        width = rng.randint(0, max(0, max_width))
        start = rng.randint(0, max(0, n_frames - width))
        feats[start : start + width] = 0.0
    return feats

