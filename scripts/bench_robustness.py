"""Robustness figures: WER of models on AN4 test under conditions unlike the training speech.

Usage:
    .venv/bin/python scripts/bench_robustness.py [--model offline streaming] [--lm none|default]
        [--an4 ../shared/data/an4] [--threads 2] [--split test|dev] [--conditions clean faint ...]

Conditions, each on all 130 AN4 test utterances (or, with ``--split dev``, on the recipe's dev
split carved from AN4 train: what comparisons between training variants are made on):
- clean: as recorded;
- 8 kHz: a round trip through 8 kHz (telephone band), as torchaudio resamples;
- noise 10 dB: white noise at 10 dB SNR (below the recipe's default 15-40 dB; the bundled models'
  last cycles trained at 5-40 dB);
- pink noise 10 dB, brown noise 10 dB: noise whose power falls as 1/f (equal power per octave,
  as in much machine and ambient noise) or 1/f^2 (rumble), flat below 20 Hz, at 10 dB SNR
  (speechrnn.data.coloured_noise; seeded);
- babble 10 dB: 3-6 other talkers at once at 10 dB SNR, drawn (seeded) from 100 utterances of the
  recipe's training speakers (AN4 train without the dev split: never the speakers scored);
  each condition's row also counts its word errors by kind (substitutions, deletions,
  insertions), which tells a model that spells out the talkers behind the speaker;
- quiet: 10 to 40 dB quieter (the recipe's gain augmentation spans -10..+6 dB);
- loud: 10 and 20 dB louder, clipped to full scale;
- faint noise: white noise at -80 dB full scale (about 3 steps of 16-bit audio, inaudible), three
  draws: how far WER moves when nothing a listener could hear changes, the resolution below
  which two models' figures on the same split do not differ;
- reverb: each utterance through a simulated room (speechrnn.reverb: a random shoebox room,
  talker and microphone placed at random, seeded), reverberation time 0.3-0.5 s (a furnished
  room) or 0.6-0.9 s (a bare one), nominal: `room_decay_s` prints the mean decay time the
  responses show (reflections are simulated to order 24, so the longer rooms ring for less); the
  recipe's robust stage can train on rooms of 0.2-0.8 s (`--reverb-prob`), other draws than these;
- espeak-ng: the test transcripts said by espeak-ng in random accents, voices, speeds and
  pitches (seeded; the engine is the one behind the recipe's synthetic training speech, but
  these sentences are never synthesised for training);
- flite: the test transcripts said by flite's four voices at random rates (seeded; added in
  session 52, after the mean of the twelve conditions above had been compared across sessions,
  so the printed mean leaves it out and it is reported beside it, as is each voice's figure:
  a model trained with some of flite's voices, `recipes/an4/run.py --synth-engines espeak-ng
  flite --flite-voices ...`, is tested on the one it left out).

The pink, brown and babble conditions were added in session 54: the printed twelve-condition
mean leaves them out too, and ``mean_wer_noise_kinds`` is the mean of the four kinds of noise
at 10 dB (white, pink, brown, babble) where all four were run.

- microphones (session 59; outside the mean too): each utterance through a random frequency
  response (speechrnn.data.random_equalizer: 2-4 peaking filters of up to 12 dB either way,
  seeded), as other microphones and channels colour speech; the recipes' `--eq-prob` trains
  with other draws of the same family, so a model trained with it is tested in-family here.
- lead-in (session 61; outside the mean too): 2.4 s of faint white noise (-60 dB full scale,
  seeded) before each utterance: a microphone's room before the talker starts. 2.4 s is the
  longest a live stream leaves before an utterance (`speechrnn live` restarts an utterance after
  `EndpointConfig.no_speech`, 2.4 s, without speech); a whole file may start with more.
- dc offset (session 65; outside the mean too): 0.01 (-40 dB full scale) added to every sample,
  as some sound cards record; with ``--remove-dc`` every condition's audio goes through
  speechrnn.audio.remove_dc first, as `--remove-dc` of transcribe, evaluate and live does.
- hum (session 65; outside the mean too): mains hum, a 50 Hz tone of amplitude 0.01 (-40 dB full
  scale) with its third and fifth harmonics at half and a quarter of that, as a ground loop
  adds to a recording; session 66 added the same hum 10 and 20 dB quieter. With ``--remove-hum
  HZ`` every condition's audio goes through notches at HZ and its multiples first, as
  `--remove-hum` of transcribe, evaluate and live does.

``warned`` (``--warnings``) counts, for each condition, the inputs that transcribe would warn of
(speechrnn.audio.input_warnings: a DC offset, mains hum) without the options that mend them.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torchaudio

from speechrnn import machine
from speechrnn.audio import input_warnings, load_audio
from speechrnn.data import DEFAULT_AN4, NOISE_EXPONENTS, an4_eval_split, an4_train_split, babble, coloured_noise, random_equalizer, steady_hum, with_lead_in
from speechrnn.decoding import beam_search_for
from speechrnn.evaluate import error_counts, error_rates
from speechrnn.model import load_model
from speechrnn.reverb import decay_time, reverberate, room_impulse_response
from speechrnn.streaming import EndpointConfig
from speechrnn.synth import engine_available, random_engine_voice, speak_all
from speechrnn.transcribe import recognize


def conditions(
    waves: list[torch.Tensor], texts: list[str], synth_dir: Path, wanted: Callable[[str], bool] = lambda name: True,
    room_decays: dict[str, float] | None = None, flite_voices: list[str] | None = None,
    talkers: Callable[[], list[torch.Tensor]] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """The ``wanted`` conditions' waveforms, by name (the others are not made); a reverberant
    condition made also puts the mean decay time its rooms show (``speechrnn.reverb.decay_time``)
    into ``room_decays`` under its name, and the flite condition each utterance's voice into
    ``flite_voices``. ``talkers`` gives the recordings babble is made of (called only if the
    babble condition is wanted; without it there is no babble condition)."""
    generator = torch.Generator().manual_seed(0)

    def at_snr(wave: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
        """``wave`` plus unit-power ``noise`` at ``snr_db``."""
        return wave + noise * (wave.pow(2).mean() / 10 ** (snr_db / 10)).sqrt()

    def noisy(wave: torch.Tensor, snr_db: float) -> torch.Tensor:
        return at_snr(wave, torch.randn(wave.shape, generator=generator), snr_db)

    def coloured(kind: str, seed: int) -> list[torch.Tensor]:
        draw = torch.Generator().manual_seed(seed)
        return [at_snr(w, coloured_noise(w.shape[0], NOISE_EXPONENTS[kind], draw), 10.0) for w in waves]

    def babbled(seed: int) -> list[torch.Tensor]:
        rng, voices = random.Random(seed), talkers()
        return [at_snr(w, babble(voices, w.shape[0], rng), 10.0) for w in waves]

    def faint(seed: int) -> list[torch.Tensor]:
        draw = torch.Generator().manual_seed(seed)
        return [w + 1e-4 * torch.randn(w.shape, generator=draw) for w in waves]

    def spoken(engine: str, seed: int, voices: list[str] | None = None) -> list[torch.Tensor]:
        """The texts said in random voices of ``engine`` (seeded); their voices' names go into ``voices``."""
        rng = random.Random(seed)
        jobs = [(text, synth_dir / f"{engine}{i:03d}.wav", random_engine_voice(engine, rng)) for i, text in enumerate(texts)]
        speak_all(engine, jobs)
        if voices is not None:
            voices.extend(voice["voice"] for _, _, voice in jobs)
        return [torch.from_numpy(load_audio(path)) for _, path, _ in jobs]

    def lead_in(seed: int) -> list[torch.Tensor]:
        draw = torch.Generator().manual_seed(seed)
        return [with_lead_in(w, LEAD_IN_S, LEAD_IN_LEVEL, draw) for w in waves]

    def microphones(seed: int) -> list[torch.Tensor]:
        rng = random.Random(seed)
        return [random_equalizer(w, rng, MICROPHONE_DB) for w in waves]

    def reverberant(name: str, rt60: tuple[float, float], seed: int) -> list[torch.Tensor]:
        rng = random.Random(seed)
        rooms = [room_impulse_response(rng, rt60) for _ in waves]
        if room_decays is not None:
            room_decays[name] = sum(map(decay_time, rooms)) / len(rooms)
        return [reverberate(w, room) for w, room in zip(waves, rooms)]

    makers: dict[str, Callable[[], list[torch.Tensor]]] = {
        "clean": lambda: waves,
        "8 kHz": lambda: [torchaudio.functional.resample(torchaudio.functional.resample(w, 16000, 8000), 8000, 16000) for w in waves],
        "noise 10 dB": lambda: [noisy(w, 10.0) for w in waves],
        "pink noise 10 dB": lambda: coloured("pink", 20261207),
        "brown noise 10 dB": lambda: coloured("brown", 20261208),
    }
    if talkers is not None:
        makers["babble 10 dB"] = lambda: babbled(20261209)
    makers["microphones"] = lambda: microphones(20261210)
    makers["lead-in"] = lambda: lead_in(20261211)
    makers["dc offset (0.01)"] = lambda: [w + DC_OFFSET for w in waves]
    for level_db in (-40, -50, -60):
        makers[f"hum (50 Hz, {level_db} dBFS)"] = lambda level_db=level_db: [w + steady_hum(w.shape[0], amplitude=10 ** (level_db / 20)) for w in waves]
    makers.update({f"faint noise (-80 dBFS, draw {seed})": (lambda seed=seed: faint(seed)) for seed in range(3)})
    for gain_db in (-40, -30, -20, -10, 10, 20):
        name = f"quiet ({gain_db} dB)" if gain_db < 0 else f"loud (+{gain_db} dB, clipped)"
        makers[name] = lambda gain_db=gain_db: [(w * 10 ** (gain_db / 20)).clamp(-1, 1) for w in waves]
    for name, rt60, seed in (("reverb (RT60 0.3-0.5 s)", (0.3, 0.5), 20261204), ("reverb (RT60 0.6-0.9 s)", (0.6, 0.9), 20261205)):
        makers[name] = lambda name=name, rt60=rt60, seed=seed: reverberant(name, rt60, seed)
    for engine, seed, voices in (("espeak-ng", 20261123, None), ("flite", 20261206, flite_voices)):
        if engine_available(engine):
            makers[engine] = lambda engine=engine, seed=seed, voices=voices: spoken(engine, seed, voices)
    return {name: make() for name, make in makers.items() if wanted(name)}


LEAD_IN_S = EndpointConfig().no_speech  # the lead-in condition's seconds of faint noise before each utterance
LEAD_IN_LEVEL = 1e-3  # its noise's RMS: -60 dB full scale
DC_OFFSET = 0.01  # the dc offset condition's constant
MICROPHONE_DB = 12.0  # the microphones condition's largest gain per filter (the recipes' --eq-db default)
NOISE_KINDS = ("noise 10 dB", "pink noise 10 dB", "brown noise 10 dB", "babble 10 dB")
LATER_NOISES = NOISE_KINDS[1:]  # the kinds added in session 54


def babble_talkers(an4: str, n: int = 100, seed: int = 20261206) -> list[torch.Tensor]:
    """``n`` utterances (seeded draw) of the recipe's training speakers: babble's talkers."""
    pool = an4_train_split(an4)
    return [torch.from_numpy(load_audio(u.audio)) for u in random.Random(seed).sample(pool, min(n, len(pool)))]


def scores(texts: list[str], hyps: list[str]) -> dict:
    """Corpus WER and CER (percent, rounded as reported) and the word errors by kind."""
    counts = error_counts(texts, hyps)
    return {**counts, "wer": round(counts["wer"], 2), "cer": round(counts["cer"], 2)}


def wer_by_voice(texts: list[str], hyps: list[str], voices: list[str]) -> dict[str, float]:
    """Corpus WER of each voice's utterances."""
    wers = {}
    for voice in sorted(set(voices)):
        own = [i for i, v in enumerate(voices) if v == voice]
        wers[voice] = round(error_rates([texts[i] for i in own], [hyps[i] for i in own])[0], 2)
    return wers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", nargs="+", default=["offline", "streaming"])
    parser.add_argument("--lm", default="none", help="'none' (greedy), 'default' (the model's tuned LM) or an ARPA path")
    parser.add_argument("--rescore", default="default", help="with the LM: 'default' (the model's tuned second pass, if any), 'none' (the first pass alone) or a model that re-ranks the n best")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--split", choices=["test", "dev"], default="test", help="AN4 test, or the recipe's dev split of AN4 train")
    parser.add_argument("--remove-dc", action="store_true", help="take each input's DC offset out first (speechrnn.audio.remove_dc)")
    parser.add_argument("--remove-hum", type=float, metavar="HZ", help="take mains hum at HZ out of each input first (speechrnn.audio.HumFilter)")
    parser.add_argument("--warnings", action="store_true", help="also count the inputs of each condition that transcribe warns of (a DC offset, mains hum)")
    parser.add_argument("--conditions", nargs="+", metavar="PREFIX", help="only the conditions whose names start with one of these (e.g. clean faint quiet; default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = (lambda name: any(name.startswith(p) for p in args.conditions)) if args.conditions else (lambda name: True)

    utterances = an4_eval_split(args.an4, args.split)
    texts = [u.text for u in utterances]
    with tempfile.TemporaryDirectory() as tmp:
        room_decays: dict[str, float] = {}
        flite_voices: list[str] = []
        sets = conditions(
            [torch.from_numpy(load_audio(u.audio)) for u in utterances], texts, Path(tmp), wanted, room_decays, flite_voices,
            talkers=lambda: babble_talkers(args.an4),
        )
    if not sets:
        parser.error(f"no condition starts with any of {args.conditions}")
    report, by_voice = {}, {}
    # (the same for every model: what transcribe would warn of in each condition's inputs)
    warned = {condition: sum(bool(input_warnings(w.numpy())) for w in waves) for condition, waves in sets.items()} if args.warnings else {}
    for name in args.model:
        model = load_model(name)
        search = beam_search_for(model, args.lm, rescore=args.rescore)
        report[name] = {}
        for condition, waves in sets.items():
            hyps = [h.text for h in recognize(model, waves, search=search, remove_dc=args.remove_dc, remove_hum=args.remove_hum)]
            report[name][condition] = scores(texts, hyps)
            if args.warnings:
                report[name][condition]["warned"] = warned[condition]
            if condition == "flite":
                by_voice[name] = wer_by_voice(texts, hyps, flite_voices)
    # The README's robustness mean: the twelve conditions of sessions 36-51, so it compares
    # across sessions: not the faint-noise draws, which measure resolution rather than
    # robustness, nor flite, added later (reported beside it).
    means = {
        name: round(sum(wers) / len(wers), 2)
        for name, rows in report.items()
        if (wers := [row["wer"] for condition, row in rows.items() if not condition.startswith(("faint", "flite", "microphones", "lead-in", "dc offset", "hum")) and condition not in LATER_NOISES])
    }
    noise_means = {
        name: round(sum(rows[kind]["wer"] for kind in NOISE_KINDS) / len(NOISE_KINDS), 2)
        for name, rows in report.items()
        if all(kind in rows for kind in NOISE_KINDS)
    }
    print(json.dumps({
        "split": args.split,
        "utterances": len(texts),
        "lm": args.lm,
        "remove_dc": args.remove_dc,
        "remove_hum": args.remove_hum,
        "wer_cer": report,
        "mean_wer_without_faint": means,  # (nor flite, pink, brown, babble, microphones, lead-in, dc offset or hum)
        "mean_wer_noise_kinds": noise_means,  # white, pink, brown and babble at 10 dB
        "flite_wer_by_voice": by_voice,
        "room_decay_s": {name: round(seconds, 3) for name, seconds in room_decays.items()},  # what the simulated rooms show (T20)
        "machine": machine.describe(),
        "torch": torch.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
