"""How often the mains-hum warning speaks: on AN4's recordings as they are, and with hum added.

Usage:
    .venv/bin/python scripts/bench_hum.py [--an4 ../shared/data/an4] [--levels -40 -50 -60 -70]

Every AN4 recording (train and test, 1078) is read whole and by its first second alone, as
`speechrnn transcribe` and `speechrnn live` read them for the warning
(speechrnn.audio.hum_warning). Printed, for each set: how many of the recordings of a second or
more get the warning, and how many name the right frequency:
- clean: as recorded (AN4 has no mains hum: every warning here is a false alarm);
- steady hum at 50 and at 60 Hz, each level of --levels (dB full scale of the fundamental): the
  robustness bench's hum (speechrnn.data.steady_hum: the fundamental and its third and fifth
  multiples, at 1, 1/2 and 1/4 of its amplitude), added to every recording;
- training's hum (speechrnn.data.mains_hum: 50 or 60 Hz, give or take 0.5 Hz, eight multiples
  at random gains and phases, seeded) at an RMS of -43 dB full scale, the bench hum's at -40.
Also printed: each level's RMS in dB full scale (the warning's scale: the levels above are the
fundamental's amplitude), and what the check costs a recording, against scipy.signal.welch's
spectrum alone (the check's own spectrum stands in for it: speechrnn.audio._low_spectrum),
mean milliseconds over the clean recordings read whole.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
from scipy.signal import welch

from speechrnn import machine
from speechrnn.audio import HUM_PROMINENCE_DB, HUM_WARNING_DB, SAMPLE_RATE, hum_level, hum_warning, load_audio
from speechrnn.data import DEFAULT_AN4, an4_utterances, mains_hum, steady_hum

TRAINING_HUM_RMS = 10 ** (-43 / 20)  # about the RMS of steady_hum at -40 dB full scale


def tally(sets: dict[str, list[np.ndarray]], expected: dict[str, float | None]) -> dict:
    """For each set of recordings: those read (a second or more), those warned of, and those
    whose warning names the ``expected`` frequency."""
    counts = {}
    for name, recordings in sets.items():
        read = [r for r in recordings if r.size >= SAMPLE_RATE]
        warned = [r for r in read if hum_warning(r) is not None]
        row = {"read": len(read), "warned": len(warned), "warned_percent": round(100 * len(warned) / max(len(read), 1), 1)}
        if expected[name] is not None:
            row["right_frequency"] = sum(hum_level(r)[0] == expected[name] for r in warned)
        counts[name] = row
    return counts


def mean_ms(work, recordings: list[np.ndarray]) -> float:
    """Mean milliseconds of ``work`` over ``recordings`` (after one call, which pays any imports)."""
    work(recordings[0])
    started = time.perf_counter()
    for recording in recordings:
        work(recording)
    return 1000 * (time.perf_counter() - started) / len(recordings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--levels", type=float, nargs="+", default=[-40.0, -50.0, -60.0, -70.0], help="the steady hum's fundamental, dB full scale")
    args = parser.parse_args()

    waves = [load_audio(u.audio) for split in ("train", "test") for u in an4_utterances(args.an4, split)]
    report = {}
    for span, cut in (("whole", None), ("first second", SAMPLE_RATE)):
        rng = random.Random(20261208)  # (the same draws for both spans: the first second is the whole's)
        sets: dict[str, list[np.ndarray]] = {"clean": [w[:cut] for w in waves]}
        expected: dict[str, float | None] = {"clean": None}
        for hz in (50.0, 60.0):
            for level in args.levels:
                name = f"steady hum {hz:g} Hz, {level:g} dBFS"
                sets[name] = [(w + steady_hum(w.shape[0], hz, 10 ** (level / 20)).numpy())[:cut] for w in waves]
                expected[name] = hz
        drawn = []
        for w in waves:
            drawn.append((w + TRAINING_HUM_RMS * mains_hum(w.shape[0], rng).numpy())[:cut])
        sets["training's hum, -43 dB RMS"] = drawn
        expected["training's hum, -43 dB RMS"] = None
        report[span] = tally(sets, expected)
    read = [w.astype(np.float64) for w in waves if w.size >= SAMPLE_RATE]
    print(json.dumps({
        "steady_hum_rms_db": {f"{level:g}": round(float(10 * np.log10(np.mean(steady_hum(SAMPLE_RATE, 50.0, 10 ** (level / 20)).double().numpy() ** 2))), 1) for level in args.levels},
        "check_ms_per_recording": round(mean_ms(hum_warning, read), 3),
        "welch_ms_per_recording": round(mean_ms(lambda w: welch(w, fs=SAMPLE_RATE, nperseg=SAMPLE_RATE, noverlap=0), read), 3),
        "recordings": len(waves),
        "hum_prominence_db": HUM_PROMINENCE_DB,
        "hum_warning_db": HUM_WARNING_DB,
        "sets": report,
        "machine": machine.describe(),
    }, indent=1))


if __name__ == "__main__":
    main()
