"""Room reverberation: simulated room impulse responses and their application to speech.

AN4 was recorded close to the microphone in a quiet room; users speak from across rooms.
Training the robust stage on reverberant copies of its utterances, and measuring WER on
reverberant test speech (scripts/bench_robustness.py), need impulse responses of rooms, which
the project must make itself (nothing is downloaded at run time). pyroomacoustics simulates
them by the image-source method for a shoebox room whose wall absorption gives a wanted
reverberation time (Sabine's formula, ``pyroomacoustics.inverse_sabine``).
"""
from __future__ import annotations

import functools
import random

import numpy as np
import torch
import torchaudio.functional as AF

from .audio import SAMPLE_RATE

# Reflections are simulated up to this order (their number grows with its cube; a 0.8 s room
# would ask for about 130), so a response lasts about half a second and the longest rooms ring
# for less than their nominal time: the bench's rooms of 0.3-0.5 s decay as 0.43 s rooms on
# average, its 0.6-0.9 s ones as 0.70 s rooms (AN4 test's rooms, :func:`decay_time`:
# scripts/bench_robustness.py prints it as room_decay_s; dev's 0.43 s and 0.72 s, session 38).
MAX_ORDER = 24


def room_impulse_response(rng: random.Random, rt60: tuple[float, float] = (0.2, 0.8), sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A ``(L,)`` impulse response from a talker to a microphone in a random shoebox room.

    The room is 3-10 m by 3-10 m by 2.4-4 m, its reverberation time drawn from ``rt60``
    (seconds); talker and microphone stand at random places at least 0.5 m from the walls and
    0.5 m from each other. The response starts at its direct path (the sound's travel time is
    cut), so reverberant speech stays aligned with the dry speech it came from, and its direct
    path has unit amplitude. A room too large for the drawn reverberation time is drawn again.
    Everything is drawn from ``rng``.
    """
    import pyroomacoustics as pra  # imported here: only training and the robustness bench need it

    for _ in range(100):
        dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 10.0), rng.uniform(2.4, 4.0)])
        try:
            absorption, order = pra.inverse_sabine(rng.uniform(*rt60), dims)
            break
        except ValueError:  # walls would need to absorb more than all the sound: a smaller room
            continue
    else:
        raise ValueError(f"no room of 3-10 x 3-10 x 2.4-4 m found dying away in {rt60[0]}-{rt60[1]} s (reverberation time too short)")
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, MAX_ORDER))

    def place() -> np.ndarray:
        return np.array([rng.uniform(0.5, d - 0.5) for d in dims])

    talker, mic = place(), place()
    while np.linalg.norm(talker - mic) < 0.5:
        mic = place()
    room.add_source(talker)
    room.add_microphone(mic)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float32)
    direct = int(np.argmax(np.abs(response)))
    response = response[direct:]
    return torch.from_numpy(response / response[0])


@functools.lru_cache(maxsize=4)
def response_bank(rt60: tuple[float, float], size: int = 256, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``size`` rooms' impulse responses (:func:`room_impulse_response`), the same for the same
    arguments, made once per process (about 2.4 s for 256 rooms here, where an utterance's
    convolution costs about 7 ms: a one-off timing, session 36), so training draws from a bank rather than simulating a new
    room for every utterance."""
    rng = random.Random(seed)
    return tuple(room_impulse_response(rng, rt60) for _ in range(size))


def reverberate(wave: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """``(N,)`` speech as heard through a room with impulse response ``response``: the same
    length and the same RMS level as ``wave`` (so the gain augmentation alone sets levels)."""
    wet = AF.fftconvolve(wave, response.to(wave.dtype))[: wave.shape[0]]
    level = wave.pow(2).mean().sqrt() / wet.pow(2).mean().sqrt().clamp(min=1e-8)
    return wet * level


def decay_time(response: torch.Tensor, drop_db: float = 20.0) -> float:
    """The reverberation time a ``(L,)`` impulse response shows, in seconds: pyroomacoustics'
    Schroeder-integral estimate (``experimental.measure_rt60``), which fits the energy still to
    come from 5 dB below its start (past the direct sound) over ``drop_db`` more (T20 for the
    default) and extrapolates the fit to 60 dB."""
    from pyroomacoustics.experimental import measure_rt60  # imported here as in room_impulse_response

    return float(measure_rt60(response.double().numpy(), fs=SAMPLE_RATE, decay_db=drop_db))
