from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn.data import DEFAULT_AN4
from speechrnn.synth import espeak_available, speak

# The suite checks CPU training bit for bit (resumed runs, DDP across gloo processes), and
# training moves to a GPU wherever one is visible: the tests see none unless
# SPEECHRNN_TEST_CUDA=1 asks for the GPU checks (tests/test_cpu_gru.py). Importing torch
# has not looked for a GPU yet; the processes tests start inherit the setting.
if os.environ.get("SPEECHRNN_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

# scripts/test.sh runs the suite in pytest-xdist workers, one a core (the suite's time is
# mostly single-threaded: interpreters starting, toy models, generated speech). Each worker,
# and each process its tests start, then computes with its share of the cores rather than all
# of them, so that the workers do not crowd each other's threads.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(share))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def an4_root():
    if not (DEFAULT_AN4 / "etc" / "an4_test.transcription").is_file():
        pytest.skip(f"AN4 corpus not found at {DEFAULT_AN4} (set SPEECHRNN_AN4 to its folder)")
    return DEFAULT_AN4


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory):
    """Generated speech: espeak-ng saying AN4-style phrases (22.05 kHz WAV)."""
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (bash scripts/setup.sh installs it)")
    folder = tmp_path_factory.mktemp("speech")
    phrases = {"enter": "enter five two", "yes": "yes", "spell": "p i t t s b u r g h", "erase": "erase c q seven"}
    for name, text in phrases.items():
        speak(text, folder / f"{name}.wav", voice="en-us", speed=150)
    return folder, phrases


@pytest.fixture
def dev_manifest_and_lm(tmp_path, speech_dir):
    """A dev manifest of the generated phrases, and a 3-gram LM (with its lexicon,
    ``lm.lexicon.txt``) built from their text by `speechrnn lm build`."""
    import json

    from speechrnn.cli import main

    folder, phrases = speech_dir
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(folder / f"{name}.wav"), "text": text}) + "\n" for name, text in phrases.items()))
    texts = tmp_path / "train.txt"
    texts.write_text("\n".join(phrases.values()) + "\n")
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(texts), "-o", str(arpa)]) == 0
    return manifest, arpa


@pytest.fixture
def tone():
    """One second of a 440 Hz tone with some noise at 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(16000)).astype(np.float32)


ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str):
    """The module of a script or recipe under the project folder (``relative_path``), imported as
    ``name`` and registered in ``sys.modules`` (a script's dataclasses look themselves up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_wav(path, samples, rate, subtype="PCM_16"):
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def random_chunks(n: int, rng: random.Random) -> list[int]:
    """Chunk sizes covering n samples: 1 sample, 10 ms, 37 ms, 1 s and random sizes mixed."""
    sizes, total = [], 0
    while total < n:
        size = min(n - total, rng.choice([1, 160, 592, 16000, rng.randint(1, 5000), 0]))
        sizes.append(size)
        total += size
    return sizes
