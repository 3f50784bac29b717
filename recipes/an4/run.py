"""Train and evaluate a speechrnn model on CMU's AN4 corpus.

Usage:
    .venv/bin/python recipes/an4/run.py --bundle              # offline (bidirectional) model, shipped as 'offline'
    .venv/bin/python recipes/an4/run.py --streaming --name streaming --bundle
    .venv/bin/python recipes/an4/run.py --resume              # continue a killed run (a finished one: re-evaluate)
    .venv/bin/python recipes/an4/run.py --evaluate-only --bundle   # evaluate and ship a stopped run's best.pt
    torchrun --nproc_per_node 4 recipes/an4/run.py            # DDP on 4 GPUs (or CPU processes)

Steps: a speaker-disjoint dev split is carved from AN4 train. The clean stage trains on the
real training speech with speed perturbation and SpecAugment (exp/NAME/clean). The robust
stage fine-tunes its best model on that speech plus espeak-ng renderings of about 30% of the
transcripts in random voices, with random gain, white noise and telephone-band (8 kHz)
audio, so the model also copes with synthetic voices and other recording conditions
(exp/NAME). The clean stage keeps the epoch with the lowest dev WER; the robust stage keeps its
last epoch, since the dev set (real speech only) cannot see what it adds. Then a word LM is built
from the training transcripts and tuned on dev; dev and test WER/CER go to
recipes/an4/RESULTS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shlex
import shutil
import sys
from pathlib import Path

import soundfile as sf
import torch

from speechrnn import decoding, machine
from speechrnn.data import AN4_DEV_SPEAKERS, DEFAULT_AN4, AugmentConfig, Utterance, an4_utterances, read_manifest, speaker_split, write_manifest
from speechrnn.features import FrontendConfig
from speechrnn.model import BUNDLED_DIR, ModelConfig, load_model, resolve_model_path, save_half_copy, save_model
from speechrnn.synth import ENGINES, FLITE_VOICES, engine_available, random_engine_voice, speak_all
from speechrnn.text import normalize_text
from speechrnn.decoding import beam_search_for, partner_file, tuning_path
from speechrnn.evaluate import evaluate
from speechrnn.files import write_atomic
from speechrnn.rescoring import Rescorer
from speechrnn.tuning import RESCORE_WEIGHTS, TUNED_BEAM_SIZES, build_and_tune_lm, choose_rescoring
from speechrnn.train import BLEND_PROVENANCE, DISTILL_SHIFT, DISTILL_WEIGHT, TrainConfig, add_frontend_options, add_noise_options, calibrate_level, distill_options, frontend_fields, held_checkpoint, inter_ctc_options, load_teacher, mix_into, noise_fields, train, write_log

HERE = Path(__file__).resolve().parent


def synthesize(
    utterances: list[Utterance], out_dir: Path, share: float, seed: int, engine: str = "espeak-ng", flite_voices: tuple[str, ...] = FLITE_VOICES,
) -> list[Utterance]:
    """Speak a random ``share`` of the transcripts with random voices of ``engine`` (espeak-ng,
    or flite's ``flite_voices``), cached in ``out_dir``."""
    manifest = out_dir / "synth.jsonl"
    if manifest.exists():
        return read_manifest(manifest)
    if not engine_available(engine):  # checked here, where it is needed: a cached set needs no synthesiser
        # The engine's program and its Debian package share its name.
        sys.exit(f"--synth-engines {engine}: {engine} is not installed (apt-get install {engine}; bash scripts/setup.sh does as root)")
    rng = random.Random(seed)
    chosen = [u for u in utterances if rng.random() < share]
    jobs = [(u.text, out_dir / "wav" / f"synth{i:04d}.wav", random_engine_voice(engine, rng, flite_voices)) for i, u in enumerate(chosen)]
    speak_all(engine, jobs)
    tag = "espeak:" if engine == "espeak-ng" else "flite:"  # (espeak-ng's manifests said "espeak:" before flite came)
    synth = [Utterance(str(path), text, 0.0, tag + voice["voice"]) for text, path, voice in jobs]
    for utt in synth:
        utt.duration = sf.info(utt.audio).duration
    write_manifest(manifest, synth)
    return synth


def synthetic_speech(train_set: list[Utterance], args: argparse.Namespace) -> list[Utterance]:
    """Each of ``--synth-engines`` speaking its own random ``--synth-share`` of the training
    transcripts (espeak-ng's the same draw and folder as before flite was added, session 52),
    and every line of each ``--synth-texts`` file."""
    synth = []
    flite_voices = tuple(v for v in FLITE_VOICES if v in args.flite_voices)  # one folder per set, in any order given
    for engine in args.synth_engines if args.synth_share > 0 else ():
        if engine == "espeak-ng":
            folder = HERE / "exp" / f"synth-{args.synth_share}"
        else:
            folder = HERE / "exp" / f"synth-{args.synth_share}-flite-{'+'.join(flite_voices)}"
        synth += synthesize(train_set, folder, args.synth_share, seed=0 if engine == "espeak-ng" else 1, engine=engine, flite_voices=flite_voices)
    for path in args.synth_texts:
        texts, digest = read_texts(path)
        for engine in args.synth_engines:
            voices = f"-flite-{'+'.join(flite_voices)}" if engine == "flite" else ""
            folder = HERE / "exp" / f"synth-texts-{digest}-{engine}{voices}"
            synth += synthesize([Utterance("", text) for text in texts], folder, 1.0, seed=2, engine=engine, flite_voices=flite_voices)
    return synth


def read_texts(path: str) -> tuple[list[str], str]:
    """The normalised non-empty lines of a ``--synth-texts`` file and the start of its SHA-256
    (a changed file is spoken anew); a missing file, or one without words, ends the run with
    its name."""
    try:
        data = Path(path).read_bytes()
        lines = data.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"--synth-texts {path}: cannot read it ({error})")
    texts = [text for text in map(normalize_text, lines) if text]
    if not texts:
        sys.exit(f"--synth-texts {path}: no words in it")
    return texts, hashlib.sha256(data).hexdigest()[:12]


def evaluate_sets(model_path: Path, sets: dict[str, list[Utterance]]) -> dict[str, dict]:
    model = load_model(model_path)
    return {name: evaluate(model, utterances).summary() for name, utterances in sets.items()}


def lm_step(
    model_path: Path, train_set: list[Utterance], dev: list[Utterance], test: list[Utterance], exp: Path, orders: list[int], beam_sizes: list[int],
    rescore_model: Path | None = None,
) -> tuple[dict, dict]:
    """Word LMs of each order from the training transcripts (never test text), tuned on dev
    (speechrnn.tuning.build_and_tune_lm), with a second pass by ``rescore_model`` if given;
    dev and test evaluated with the best settings."""
    step = build_and_tune_lm(
        model_path, [u.text for u in train_set], dev, exp / "lm", orders, beam_sizes, prefix="an4", data="AN4 dev split of train", log=sys.stderr, rescore_model=rescore_model
    )
    model = load_model(model_path)
    results = {f"{name} + LM": evaluate(model, utterances, search=step.search).summary() for name, utterances in (("dev", dev), ("test", test))}
    return results, step.info()


def read_settings(path: Path) -> dict:
    """:func:`speechrnn.decoding.read_settings`, its error ending the run with the file's name."""
    try:
        return decoding.read_settings(path)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def retune_partner(model_path: Path, name: str, dev: list[Utterance], test: list[Utterance]) -> dict | None:
    """An opt-in second pass recorded in a shipped model's settings (its ``partners``), chosen
    anew on dev for the model as it now ships: the weight dev reads best, and the dev and test
    figures at it (those tests/test_rescoring.py recomputes). None where dev chooses no second
    pass (weight 0) or the partner is gone."""
    partner = partner_file(name, model_path.parent)
    if partner is None:
        print(f"partner {name!r} of {model_path.name}: no such model; its record is dropped", file=sys.stderr)
        return None
    model = load_model(model_path)
    search = beam_search_for(model, rescore="none")
    choice = choose_rescoring(model, dev, search.config, partner, log=sys.stderr)
    if choice.config.weight == 0:
        print(f"partner {name!r} of {model_path.name}: AN4 dev reads no weight above 0 better than the first pass alone; its record is dropped", file=sys.stderr)
        return None
    # Dev was read at this weight by the choice itself (the same re-ranking a search with the
    # partner makes); test is decoded once, for the record.
    tested = evaluate(model, test, search=search.with_rescorer(Rescorer(choice.config, model.tokenizer))).summary()
    weight = f"{choice.config.weight:g}"
    return {
        "weight": choice.config.weight,
        "note": f"not used unless asked for (--rescore {name}, which takes {weight}: AN4 dev chose it from {min(RESCORE_WEIGHTS):g}-{max(RESCORE_WEIGHTS):g} when --bundle shipped the model); see the README",
        "an4_test": {"wer": tested["wer"], "cer": tested["cer"]},
        "an4_dev": {"wer": round(choice.wer, 2), "cer": round(choice.cer, 2)},
    }


def retune_partners(target: Path, partners: list[str], dev: list[Utterance], test: list[Utterance]) -> None:
    """After ``target`` is shipped: the second passes recorded with the models beside it are
    chosen anew where they involve it, its own (``partners``: those of the settings it replaced,
    and any --partner adds) and those of other models that name it as their partner, so that no
    recorded weight or figure belongs to the model it replaced."""
    settings_path = tuning_path(target)
    own = {name: record for name in partners if (record := retune_partner(target, name, dev, test)) is not None}
    if own:
        settings = read_settings(settings_path)
        write_atomic(settings_path, json.dumps({**settings, "partners": own}, indent=2) + "\n")
    for other_settings in sorted(target.parent.glob("*.lm.json")):
        other = other_settings.with_name(other_settings.name[: -len(".lm.json")] + ".pt")
        if other_settings == settings_path or not other.is_file():
            continue
        settings = read_settings(other_settings)
        partners = settings.get("partners") or {}
        names = [name for name in partners if partner_file(name, target.parent) == target.resolve()]
        if not names:
            continue
        for name in names:
            record = retune_partner(other, name, dev, test)
            if record is None:
                del partners[name]
            else:
                partners[name] = record
        settings["partners"] = partners
        if not partners:
            del settings["partners"]
        write_atomic(other_settings, json.dumps(settings, indent=2) + "\n")


def command(exp: Path) -> str:
    """The command that trained the experiment (kept when it started; --resume and
    --evaluate-only runs do not replace it)."""
    saved = exp / "command.txt"
    return saved.read_text().strip() if saved.exists() else " ".join(["python", "recipes/an4/run.py"] + [shlex.quote(a) for a in sys.argv[1:]])


@dataclasses.dataclass
class Stage:
    """One training run of the recipe: its folder, data, augmentation and schedule."""

    name: str  # "" for a one-stage recipe
    exp: Path
    data: list[Utterance]
    augment: AugmentConfig
    train_config: TrainConfig
    keep: str = "best"  # which epoch becomes the stage's model: lowest dev WER or the last
    half_start: bool = False  # starts from the stage before's model rounded to float16 (--half-restarts)


def stage_histories(stages: list[Stage]) -> list[dict]:
    """The stages' per-epoch rows, one list, with wall time counted from the first stage's start;
    none where a stage has no checkpoint (``--evaluate-only`` of a model file put in the folder
    as its best.pt, e.g. a weight average: no training of its own to report)."""
    if not all((stage.exp / "checkpoint.pt").is_file() for stage in stages):
        return []
    rows, offset = [], 0.0
    for stage in stages:
        state = torch.load(stage.exp / "checkpoint.pt", map_location="cpu", weights_only=True)
        for row in state["history"]:
            rows.append({**row, "stage": stage.name, "wall_s": round(row["wall_s"] + offset, 1)})
        offset += state["elapsed"]
    return rows


def training_summary(args, stages: list[Stage], history: list[dict]) -> list[str]:
    """RESULTS.md's lines on a recipe run's training: its time, which epoch became the model, and
    each stage's epochs, data and train config."""
    final = [row for row in history if row["stage"] == stages[-1].name]
    best = final[-1] if stages[-1].keep == "last" else min(final, key=lambda row: row["dev_wer"])
    n_averaged = stages[-1].train_config.average_epochs
    kept = f"the average of its last {n_averaged} epochs" if n_averaged else ("its last" if stages[-1].keep == "last" else "lowest dev WER")
    if args.clean_mix > 0 and len(stages) > 1:
        kept += f", its weights mixed with {args.clean_mix:g} of the clean stage's model"
    training = "; ".join(
        f"{stage.name + ' stage: ' if stage.name else ''}{sum(r['stage'] == stage.name for r in history)} epochs "
        f"on {len(stage.data)} utterances{' from the stage before rounded to float16' if stage.half_start else ''}, "
        f"train config `{json.dumps(dataclasses.asdict(stage.train_config))}`"
        for stage in stages
    )
    return [
        f"Training: {history[-1]['wall_s'] / 60:.1f} min wall time in all; model: epoch {best['epoch']} of the last stage ({kept})  ",
        f"Stages: {training}  ",
    ]


def write_results(path: Path, args, config: ModelConfig, stages: list[Stage], results: dict, n_params: int, lm_info: dict | None, metadata: dict) -> None:
    """Write model ``args.name``'s section of the RESULTS.md at ``path`` (see
    :func:`merge_section`) and its learning curve beside it; ``metadata``: the model file's."""
    exp = stages[-1].exp
    history = stage_histories(stages)
    if history:
        training_lines = training_summary(args, stages, history)
    else:
        # No training here: say where the model came from, and drop the curve of the model this
        # section replaces.
        origin = {k: metadata[k] for k in BLEND_PROVENANCE if k in metadata}
        training_lines = [f"Training: none in this folder (`--evaluate-only` of a model file placed as its best.pt{'; ' + json.dumps(origin) if origin else ''})  "]
        (path.parent / f"{args.name}_curve.png").unlink(missing_ok=True)
    kind = "bidirectional" if config.bidirectional else "unidirectional"
    lines = [
        f"## {args.name}: {config.n_layers}x{config.n_hidden} {kind} {config.rnn_type.upper()}, {n_params / 1e6:.2f} M parameters",
        "",
        f"Command: `{command(exp)}`  ",
        f"Machine: {machine.describe()}, trained on {stages[-1].train_config.threads} CPU thread(s), torch {torch.__version__}, "
        f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}  ",
        *training_lines,
        f"Model config: `{json.dumps({k: v for k, v in config.to_dict().items() if k not in ('vocab', 'frontend')})}`",
        "",
        "| set | utterances | WER % | CER % | decode RTF |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n']} | {r['wer']:.2f} | {r['cer']:.2f} | {r['rtf']:.4f} |")
    if lm_info is not None:
        lines += [
            "",
            f"LM: {len(lm_info['lm']['ngrams'])}-gram modified Kneser-Ney from the {lm_info['lm']['sentences']} training transcripts "
            f"({lm_info['lm']['vocabulary']} words, n-grams {lm_info['lm']['ngrams']}), lexicon-constrained beam search of "
            f"{lm_info['beam_size']}; tuned on dev (the order among {', '.join(map(str, lm_info['orders_tried']))}, the beam among {', '.join(map(str, lm_info['beam_sizes_tried']))}): LM weight {lm_info['lm_weight']:g}, word score {lm_info['word_score']:g}.",
        ]
        if lm_info.get("rescore_grid"):
            rescore = lm_info["rescore"]
            tried = ", ".join(f"{g['weight']:g}: {g['wer']:.2f}%" for g in lm_info["rescore_grid"])
            lines[-1] += (
                f" Second pass ('+ LM' rows): the {rescore['nbest']} best re-ranked by `{Path(rescore['model']).name}` at weight {rescore['weight']:g}"
                if rescore else " Second pass: none (weight 0 read dev best)"
            ) + f", chosen on dev (dev WER by weight: {tried})."

    if history:
        (exp / "all-stages").mkdir(exist_ok=True)
        write_log(exp / "all-stages", history)  # the whole learning curve, both stages
        shutil.copyfile(exp / "all-stages" / "curve.png", path.parent / f"{args.name}_curve.png")
        lines += [
            "",
            f"Learning curve (dev, greedy; plot: [{args.name}_curve.png]({args.name}_curve.png)):",
            "",
            "| stage | epoch | wall min | train loss | dev WER % | dev CER % |",
            "|---|---|---|---|---|---|",
        ]
        for i, row in enumerate(history):
            last_of_stage = i + 1 == len(history) or history[i + 1]["stage"] != row["stage"]
            if row["epoch"] % 5 == 0 or row["epoch"] <= 2 or last_of_stage:
                lines.append(
                    f"| {row['stage'] or '-'} | {row['epoch']} | {row['wall_s'] / 60:.1f} | {row['train_loss']:.3f} | {row['dev_wer']:.2f} | {row['dev_cer']:.2f} |"
                )
    section = "\n".join(lines) + "\n"
    write_atomic(path, merge_section(path.read_text() if path.exists() else "", args.name, section))


RESULTS_HEADER = (
    "# AN4 results\n\nWritten by `recipes/an4/run.py`: greedy CTC decoding, and beam search with a word LM (rows '+ LM'). "
    "Dev is a speaker-disjoint split of AN4 train.\n\n"
)


def merge_section(text: str, name: str, section: str) -> str:
    """RESULTS.md ``text`` with model ``name``'s section (``## name: ...``) replaced by
    ``section`` where it stands, or, for a model new to the file, put before the hand-written
    sections (the first ``## Notes...`` one and all after it). Every other section keeps its
    place and text."""
    sections: dict[str, str] = {}  # header up to its first colon -> the section, in the file's order
    for chunk in text.split("\n## ")[1:]:
        sections[chunk.split("\n", 1)[0].split(":", 1)[0]] = "## " + chunk.rstrip("\n") + "\n"
    if name in sections:
        sections[name] = section
    else:
        keys = list(sections)
        notes = next((i for i, key in enumerate(keys) if key.startswith("Notes")), len(keys))
        sections = {**{k: sections[k] for k in keys[:notes]}, name: section, **{k: sections[k] for k in keys[notes:]}}
    return RESULTS_HEADER + "\n".join(sections.values())


# The bundled streaming model's recipe (session 6): a unidirectional model learns more slowly
# than a bidirectional one (twice the clean epochs), underfits rather than overfits (less
# dropout), and cannot normalise its input level in advance (a wider gain range).
# Session 7: 80 ms of look-ahead instead of 40 ms (AN4 test 18.76% greedy instead of 22.51%).
# Session 8: the frontend's causal level normalisation (10 dB/s), so the model need not learn
# every input level (AN4 test 16.82% greedy; better on every dev robustness condition). The wide
# gain range stays: above the log's floor the tracking undoes it, near the floor it still teaches.
# Session 14: joined examples in the robust stage, as for the offline model (AN4 dev 22.80%
# greedy against 24.38%, 15.58% with the LM against 17.61%; 20 utterances a recording read live
# 28.22% against 34.76%).
# Session 23: the level tracking starts from 24 dB (AN4 train's median loudest frame), at most
# 43 dB above the first frame (its median lead; scripts/level_stats.py), so a weak first sound
# after a quiet lead-in is no longer read as loud as the vowel after it (AN4 dev 21.90% greedy
# against 22.80%, 14.45% with the LM against 15.58%; first words 30% wrong against 47%).
STREAMING_DEFAULTS = {
    "epochs": 120, "robust_epochs": 20, "dropout": 0.15, "gain_db": (-30.0, 15.0), "lookahead": 4, "level_decay_db": 10.0,
    "level_start_db": 24.0, "level_start_lead_db": 43.0, "concat_prob": 0.4, "inter_ctc_weight": 0.0,
}
# The bundled offline model's recipe (session 14): 85 clean epochs (session 10's longer run),
# and a robust stage in which 40% of the examples join 2-3 utterances, so that recordings of
# several sentences read almost as well as single commands (AN4 dev, 5 utterances a
# recording: 17.61% WER in pieces of <= 12 s, against 20.09% for the model before; read whole
# 19.41% against 25.73%).
# Session 16: 25 robust epochs instead of the bundled model's 15: on AN4 dev as good or better
# in two runs (seeds 0 and 1, each pair from one clean stage) on clean speech, the robustness
# conditions and long recordings (mean of ten conditions 20.43% against 22.53%, and 19.50%
# against 20.95%).
# Session 25: an intermediate CTC loss (weight 0.3, the shared head on the first two GRU
# layers' output) in both stages: on AN4 dev better with the LM in two runs (11.06% against
# 11.51% for seed 0, 9.71% against 10.61% for seed 1), greedy 12.87% against 14.90% (seed 0)
# and 14.45% against 13.77% (seed 1; better under dev's robustness conditions, 18.92% against
# 19.48%). Not tried on the streaming model.
OFFLINE_DEFAULTS = {
    "epochs": 85, "robust_epochs": 25, "dropout": ModelConfig.dropout, "gain_db": AugmentConfig.gain_db, "lookahead": 0, "level_decay_db": 0.0,
    "level_start_db": None, "level_start_lead_db": None, "concat_prob": 0.4, "inter_ctc_weight": 0.3,
}


def float_or_none(text: str) -> float | str:
    """A number, or 'none' for an option whose recipe default is a number but can be off."""
    return text if text == "none" else float(text)


def robust_augment(args: argparse.Namespace) -> AugmentConfig:
    """The robust stage's (or a one-stage run's) augmentation; the clean stage keeps its speed
    perturbation, frequency warping, SpecAugment, joined examples and dither."""
    robust = AugmentConfig(
        **noise_fields(args), reverb_prob=args.reverb_prob, gain_db=tuple(args.gain_db), concat_prob=args.concat_prob,
        dither_db=tuple(args.dither_db) if args.dither_db else None, max_freq_width=args.freq_mask_width, max_time_width=args.time_mask_width,
    )
    if args.no_level_augment:
        robust = dataclasses.replace(robust, noise_prob=0.0, gain_db=(0.0, 0.0))
    return robust


def clean_augment(robust: AugmentConfig) -> AugmentConfig:
    """The clean stage's augmentation: the robust stage's without its level changes, noise,
    telephone band, microphones and rooms."""
    return dataclasses.replace(robust, noise_prob=0.0, gain_db=(0.0, 0.0), narrowband_prob=0.0, reverb_prob=0.0, eq_prob=0.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the recipe's defaults for the model kind filled in."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--an4", default=str(DEFAULT_AN4), help="AN4 folder (default: %(default)s)")
    parser.add_argument("--name", default="offline", help="model name: its experiment folder and bundled name")
    parser.add_argument("--exp", default=None, help="experiment folder (default: recipes/an4/exp/NAME)")
    parser.add_argument("--streaming", action="store_true", help="unidirectional (streaming) model")
    parser.add_argument("--lookahead", type=int, default=None, help=f"look-ahead output frames, 20 ms each (default: {OFFLINE_DEFAULTS['lookahead']}, streaming {STREAMING_DEFAULTS['lookahead']})")
    parser.add_argument("--input-lookahead", type=int, default=0, help="future frames (20 ms each) stacked into the RNN's input, added to --lookahead's latency (default: %(default)s)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--frame-stack", type=int, default=2, help="frames stacked per RNN step (default: %(default)s, 20 ms steps)")
    parser.add_argument("--n-mfcc", type=int, default=FrontendConfig.n_mfcc)
    parser.add_argument("--features", choices=("mfcc", "logmel"), default="logmel", help="frontend output (default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=None, help=f"dropout between RNN layers (default: {OFFLINE_DEFAULTS['dropout']}, streaming {STREAMING_DEFAULTS['dropout']})")
    parser.add_argument("--io-dropout", type=float, default=0.0, help="dropout after the input projection and before the head (default: %(default)s)")
    parser.add_argument(
        "--level-decay-db", type=float, default=None,
        help=f"causal level normalisation in the frontend: dB per second its tracked peak falls (default: {OFFLINE_DEFAULTS['level_decay_db']}, off; streaming {STREAMING_DEFAULTS['level_decay_db']})",
    )
    parser.add_argument(
        "--level-start-db", type=float_or_none, default=None,
        help=f"with level tracking: the running level before the first frame, in dB of a frame's total mel power, or 'none': the first frame starts it (default: off; streaming {STREAMING_DEFAULTS['level_start_db']}, AN4 train's median loudest frame by scripts/level_stats.py)",
    )
    parser.add_argument(
        "--level-start-lead-db", type=float_or_none, default=None,
        help=f"with a start level: start at most this many dB above the first frame's level, so a quiet recording starts near its own level, or 'none': no bound (default: streaming {STREAMING_DEFAULTS['level_start_lead_db']}, AN4 train's median lead by scripts/level_stats.py)",
    )
    add_frontend_options(parser)
    parser.add_argument("--no-level-augment", action="store_true", help="no random gain or added white noise in the robust stage (--dither-db is set apart)")
    parser.add_argument(
        "--gain-db", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
        help=f"random level change of the robust stage, in dB (default: {OFFLINE_DEFAULTS['gain_db']}, streaming {STREAMING_DEFAULTS['gain_db']})",
    )
    add_noise_options(parser, ", robust stage")
    parser.add_argument("--reverb-prob", type=float, default=AugmentConfig.reverb_prob, help=f"share of utterances heard through a simulated room (RT60 {AugmentConfig.rt60[0]}-{AugmentConfig.rt60[1]} s), robust stage (default: %(default)s)")
    parser.add_argument(
        "--dither-db", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
        help="add white noise at a random level in this range (dBFS, e.g. -90 -65) to every training example, both stages (default: off)",
    )
    parser.add_argument(
        "--concat-prob", type=float, default=None,
        help=f"share of training examples (both stages) made of 2-3 utterances in a row (default: {OFFLINE_DEFAULTS['concat_prob']}, streaming {STREAMING_DEFAULTS['concat_prob']})",
    )
    parser.add_argument("--freq-mask-width", type=int, default=AugmentConfig.max_freq_width, help="SpecAugment: widest frequency mask, mel bins, both stages (default: %(default)s)")
    parser.add_argument("--time-mask-width", type=int, default=AugmentConfig.max_time_width, help="SpecAugment: widest time mask, 10 ms frames, both stages (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=320, help="RNN units per direction (default: %(default)s)")
    parser.add_argument("--conv-channels", type=int, default=0, help="a 2-D convolution frontend of two 3x3 layers with this many channels, causal in a streaming model (default: %(default)s, none)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of the (clean) stage (default: {OFFLINE_DEFAULTS['epochs']}, streaming {STREAMING_DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synth-share", type=float, default=0.3, help="share of train transcripts also spoken by each of --synth-engines (robust stage)")
    parser.add_argument("--synth-engines", nargs="+", choices=ENGINES, default=["espeak-ng"], help="speech synthesisers of the robust stage's synthetic voices, each speaking its own --synth-share of the transcripts (default: %(default)s)")
    parser.add_argument(
        "--synth-texts", nargs="+", default=[], metavar="FILE",
        help="text files whose every line each of --synth-engines also says, in random voices, in the robust and room stages: words beyond AN4's (not in the LM)",
    )
    parser.add_argument("--flite-voices", nargs="+", choices=FLITE_VOICES, default=list(FLITE_VOICES), help="with --synth-engines flite: its voices to train on (default: all; leave one out to test on a voice never heard)")
    parser.add_argument("--robust-epochs", type=int, default=None, help=f"epochs of the robust stage (default: {OFFLINE_DEFAULTS['robust_epochs']}, streaming {STREAMING_DEFAULTS['robust_epochs']}; 0: one stage, robust from the start)")
    parser.add_argument("--robust-lr", type=float, default=5e-4, help="peak learning rate of the robust stage (default: %(default)s)")
    parser.add_argument(
        "--cycles", type=int, default=1,
        help="train the clean and robust stages this many times, each later cycle from the one before: "
        "--cycle-epochs clean epochs at --cycle-lr, then the robust stage as before (default: %(default)s)",
    )
    parser.add_argument("--cycle-epochs", type=int, default=40, help="with --cycles: clean epochs of each later cycle (default: %(default)s)")
    parser.add_argument("--cycle-lr", type=float, default=1e-3, help="with --cycles: peak learning rate of each later cycle's clean stage (default: %(default)s)")
    parser.add_argument(
        "--room-epochs", type=int, default=0,
        help="a stage of this many epochs after the (last) robust stage: its data, augmentation, learning rate and warm-up, "
        "with --room-prob of the utterances heard through simulated rooms; its last epoch is the model (default: %(default)s, none)",
    )
    parser.add_argument("--room-prob", type=float, default=0.3, help="with --room-epochs: share of the third stage's utterances heard through a simulated room (default: %(default)s)")
    parser.add_argument(
        "--half-restarts", action="store_true",
        help="each later cycle and the room stage start from the stage before's model rounded to float16, as when that model "
        "was shipped (--bundle) and the next command began from the shipped file: how the bundled models' lineages ran",
    )
    parser.add_argument("--clean-mix", type=float, default=0.0, help="the model file mixes in this share of the clean stage's weights (default: %(default)s)")
    parser.add_argument("--average-epochs", type=int, default=0, help="the last stage's model averages the weights of its last N epochs (default: %(default)s, its last epoch)")
    parser.add_argument(
        "--inter-ctc-weight", type=float, default=None,
        help=f"weight of an intermediate CTC loss on the lower RNN layers' output, both stages; 0: off (default: {OFFLINE_DEFAULTS['inter_ctc_weight']} with 2 or more layers, streaming {STREAMING_DEFAULTS['inter_ctc_weight']})",
    )
    parser.add_argument("--inter-ctc-layer", type=int, default=None, help="RNN layers below the intermediate CTC loss (default: all but the last)")
    parser.add_argument(
        "--distill-from", default=None, metavar="MODEL",
        help="a teacher model (file or bundled name, e.g. offline) whose output distributions the model also learns to match, both stages (default: none)",
    )
    parser.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT, help="with --distill-from: the loss is (1 - W) * CTC + W * the per-frame KL divergence from the teacher (default: %(default)s)")
    parser.add_argument(
        "--distill-shift", type=int, default=DISTILL_SHIFT,
        help="with --distill-from: the teacher's frames are delayed by this many output frames (default: %(default)s, the median lag of session 23's streaming model's characters behind the offline model's on AN4 dev)",
    )
    parser.add_argument("--robust-warmup-steps", type=int, default=100, help="linear warm-up steps of the robust stage (default: %(default)s)")
    parser.add_argument("--dev-speakers", type=int, default=AN4_DEV_SPEAKERS)
    parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps, help="linear warm-up steps (default: %(default)s)")
    parser.add_argument(
        "--keep", choices=["best", "last"], default=None,
        help="with --robust-epochs 0: the epoch that becomes the model, lowest dev WER or the last (default: best; two stages: the clean stage keeps its best, the robust stage its last)",
    )
    parser.add_argument("--init-from", default=None, help="start from this model file's weights (fine-tuning; same model options, or a longer --lookahead or --input-lookahead, or a larger --hidden: the weights they add start at zero)")
    parser.add_argument("--own-statistics", action="store_true", help="with --init-from: compute the input statistics (and a running mean's prior) from the training speech as a run from scratch does, not keep the start file's")
    parser.add_argument("--resume", action="store_true", help="continue from the experiment's checkpoint")
    parser.add_argument("--evaluate-only", action="store_true", help="no training: evaluate (and bundle) the experiment's best.pt")
    parser.add_argument("--bundle", action="store_true", help="copy the best model into speechrnn/models/NAME.pt (float16 if it reads dev as float32 does; see --half)")
    parser.add_argument(
        "--half", choices=("auto", "yes", "no"), default="auto",
        help="--bundle ships float16 weights: 'auto' when they read dev greedy as the float32 ones do (the same WER, a CER no higher), or always / never (default: %(default)s)",
    )
    parser.add_argument("--bundle-dir", type=Path, default=BUNDLED_DIR, help="where --bundle writes NAME.pt, its LM and NAME.lm.json (default: the package's models folder)")
    parser.add_argument("--lm-order", type=int, nargs="+", default=[2, 3, 4, 5], help="n-gram orders of the word LM to tune on dev, the best kept (default: %(default)s; 0: no LM step)")
    parser.add_argument("--beam-size", type=int, nargs="+", default=list(TUNED_BEAM_SIZES), help="beam sizes to tune on dev with each LM (default: %(default)s)")
    parser.add_argument(
        "--rescore-with", type=Path, metavar="MODEL",
        help="also tune a second pass on dev: this model (a file, or a bundled model's name) re-ranks the LM search's n best (speechrnn.rescoring)",
    )
    parser.add_argument(
        "--partner", action="append", default=[], metavar="NAME",
        help="with --bundle and an LM: also choose on dev an opt-in second pass by this model (a model in --bundle-dir, by name or file name) "
        "and record it in the shipped settings' partners where dev reads it better than the first pass alone (repeatable)",
    )
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"), help="results file to update (default: %(default)s)")
    args = parser.parse_args(argv)
    lead_given = args.level_start_lead_db not in (None, "none")
    if args.inter_ctc_weight is None and args.layers < 2:
        args.inter_ctc_weight = 0.0  # one layer has none below it
    for key, value in (STREAMING_DEFAULTS if args.streaming else OFFLINE_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        elif getattr(args, key) == "none":  # turned off on the command line
            setattr(args, key, None)
    if args.level_start_db is None and args.level_start_lead_db is not None:
        if lead_given:
            parser.error("--level-start-lead-db bounds a start level: give --level-start-db too")
        args.level_start_lead_db = None  # the recipe's bound goes with its start level
    try:
        config = model_config(args)  # the model's own checks (e.g. --conv-channels must not be negative), before any data is read
        robust_augment(args)  # and the augmentation's (e.g. --snr-db a range)
        if args.distill_from:  # the teacher's too
            load_teacher(args.distill_from, config, TrainConfig(**distill_options(args.distill_from, args.distill_weight, args.distill_shift)))
    except (OSError, ValueError) as error:  # a bad option, or a teacher model file missing or unreadable
        parser.error(str(error))
    if len(set(args.synth_engines)) < len(args.synth_engines):
        parser.error("--synth-engines: name each engine once")
    if args.room_epochs < 0 or not 0.0 < args.room_prob <= 1.0:
        parser.error("--room-epochs must be >= 0 and --room-prob in (0, 1]")
    if args.room_epochs > 0 and args.robust_epochs == 0:
        parser.error("--room-epochs adds a stage after the robust stage: it needs --robust-epochs above 0")
    if args.cycles < 1 or args.cycle_epochs < 1:
        parser.error("--cycles and --cycle-epochs must be at least 1")
    if args.cycles > 1 and args.robust_epochs == 0:
        parser.error("--cycles repeats the clean and robust stages: it needs --robust-epochs above 0")
    if args.half_restarts and args.cycles == 1 and not args.room_epochs:
        parser.error("--half-restarts rounds the start of later cycles and the room stage: give --cycles 2 or more, or --room-epochs")
    if args.own_statistics and not args.init_from:
        parser.error("--own-statistics recomputes a start file's statistics: give --init-from (a run from scratch computes its own)")
    if args.keep is not None and args.robust_epochs != 0:
        parser.error("--keep is for a one-stage run (--robust-epochs 0); two stages keep the clean stage's best and the robust stage's last epoch")
    if args.partner and (not args.bundle or 0 in args.lm_order):
        parser.error("--partner records a second pass in the shipped model's settings: it needs --bundle and an LM (--lm-order above 0)")
    for name in args.partner:  # checked now, not after hours of training
        found = partner_file(name, args.bundle_dir)
        if found is None:
            parser.error(f"--partner {name}: no such model (a name or file in {args.bundle_dir}, or a path)")
        if found == (args.bundle_dir / f"{args.name}.pt").resolve():
            parser.error(f"--partner {name}: the model being shipped cannot re-rank itself")
    return args


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The model the command line asks for."""
    return ModelConfig(
        frontend=FrontendConfig(
            n_mfcc=args.n_mfcc,
            kind=args.features,
            level_decay_db=args.level_decay_db,
            level_start_db=args.level_start_db,
            level_start_lead_db=args.level_start_lead_db,
            **frontend_fields(args),
        ),
        frame_stack=args.frame_stack,
        n_layers=args.layers,
        n_hidden=args.hidden,
        n_proj=args.hidden,
        dropout=args.dropout,
        io_dropout=args.io_dropout,
        bidirectional=not args.streaming,
        lookahead=args.lookahead,
        input_lookahead=args.input_lookahead,
        conv_channels=args.conv_channels,
    )


def recipe_stages(args: argparse.Namespace, exp: Path, train_set: list[Utterance], synth: list[Utterance]) -> list[Stage]:
    """The training runs the command line asks for, in order: one stage, or clean then robust
    (again for each of --cycles, then rooms with --room-epochs); the last one writes ``exp``'s model."""
    robust = robust_augment(args)
    schedule = dict(
        batch_size=args.batch_size, threads=args.threads, seed=args.seed,
        **inter_ctc_options(args.inter_ctc_weight, args.inter_ctc_layer, args.layers), **distill_options(args.distill_from, args.distill_weight, args.distill_shift),
    )
    main_config = TrainConfig(epochs=args.epochs, lr=args.lr, warmup_steps=args.warmup_steps, **schedule)
    if args.robust_epochs > 0:
        # Two stages: real speech with speed perturbation and SpecAugment only, which learns
        # fastest; then fine-tuning on it plus synthetic voices, level changes, noise and
        # telephone-band audio, which the first stage's model does not cope with.
        clean = clean_augment(robust)
        last_stage = dict(average_epochs=args.average_epochs)  # the last stage's model may average its last epochs
        stages = []
        for cycle in range(1, args.cycles + 1):
            # Session 35: the streaming partner's two stages run again from its model (40 clean
            # epochs at 1e-3, then the robust stage) read AN4 dev 18.96% greedy against 23.70%;
            # session 37 bundled that as the streaming model. A later cycle starts from the one
            # before's model file as --init-from would, so --cycles 2 gives the weights of the
            # two commands (tests/test_recipe.py).
            folder, suffix = (exp, "") if cycle == 1 else (exp / f"cycle{cycle}", f" {cycle}")
            last = cycle == args.cycles and not args.room_epochs
            cycle_config = main_config if cycle == 1 else dataclasses.replace(main_config, epochs=args.cycle_epochs, lr=args.cycle_lr)
            stages += [
                Stage("clean" + suffix, folder / "clean", train_set, clean, cycle_config, half_start=args.half_restarts and cycle > 1),
                Stage(
                    "robust" + suffix, exp if last else folder / "robust", train_set + synth, robust,
                    TrainConfig(epochs=args.robust_epochs, lr=args.robust_lr, warmup_steps=args.robust_warmup_steps, **(last_stage if last else {}), **schedule), keep="last",
                ),
            ]
        if args.room_epochs:
            # Session 36: the bundled offline model is session 27's after one more robust stage
            # with 30% of its utterances in simulated rooms (an --init-from run); this third
            # stage makes that lineage one command. It starts from the robust stage's model
            # file as --init-from would, so the two ways give the same weights
            # (tests/test_recipe.py).
            rooms = dataclasses.replace(robust, reverb_prob=args.room_prob)
            stages.append(Stage("rooms", exp, train_set + synth, rooms, TrainConfig(epochs=args.room_epochs, lr=args.robust_lr, warmup_steps=args.robust_warmup_steps, **last_stage, **schedule), keep="last", half_start=args.half_restarts))
    else:
        stages = [Stage("", exp, train_set + synth, robust, main_config, keep=args.keep or "best")]
    return stages


def main() -> None:
    args = parse_args()
    exp = Path(args.exp or HERE / "exp" / args.name)
    held = None if args.resume or args.evaluate_only else held_checkpoint(exp)
    if held:  # a run's checkpoints are continued, never trained over
        raise SystemExit(f"{exp} holds a run already ({held}): --resume continues it, --evaluate-only reads its model; give another --exp (or --name) for a new one")
    all_train = an4_utterances(args.an4, "train")
    test = an4_utterances(args.an4, "test")
    train_set, dev = speaker_split(all_train, args.dev_speakers, seed=0)
    synth = synthetic_speech(train_set, args)
    print(f"train {len(train_set)} real + {len(synth)} synthetic, dev {len(dev)}, test {len(test)} utterances", file=sys.stderr)

    config = model_config(args)
    stages = recipe_stages(args, exp, train_set, synth)
    if args.evaluate_only:
        best = exp / "best.pt"
        if not best.is_file():
            raise SystemExit(f"--evaluate-only: {best} does not exist (train first, or put a model file there)")
    else:
        if not (args.resume and (exp / "command.txt").exists()):
            exp.mkdir(parents=True, exist_ok=True)
            (exp / "command.txt").write_text(" ".join([".venv/bin/python", "recipes/an4/run.py"] + [shlex.quote(a) for a in sys.argv[1:]]) + "\n")
        start = args.init_from
        for index, stage in enumerate(stages):
            if stage.name:
                print(f"{stage.name} stage: {len(stage.data)} utterances, {stage.train_config.epochs} epochs", file=sys.stderr)
            metadata = {"recipe": "an4", "name": args.name, "stage": stage.name}
            if stage.half_start:
                start = save_half_copy(start, stage.exp / "start-float16.pt")  # each DDP rank writes the same bytes, atomically
            best = train(config, stage.data, dev, stage.exp, stage.train_config, stage.augment, resume=args.resume, metadata=metadata, init_from=start, keep=stage.keep, teacher=args.distill_from, own_statistics=args.own_statistics and index == 0)
            start = best
        if args.clean_mix > 0 and len(stages) > 1 and int(os.environ.get("RANK", "0")) == 0:
            mix_into(best, [stage for stage in stages if stage.name.startswith("clean")][-1].exp / "best.pt", args.clean_mix)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if config.bidirectional and not args.evaluate_only:
        calibrate_level(best, train_set)

    results = evaluate_sets(best, {"dev": dev, "test": test})
    lm_info = None
    if 0 not in args.lm_order:
        lm_results, lm_info = lm_step(best, train_set, dev, test, exp, args.lm_order, args.beam_size, args.rescore_with)
        results.update(lm_results)
    model = load_model(best)
    if args.bundle:
        # Ship float16 weights when they read dev as the float32 ones do (the same WER, a CER no
        # higher), else float32 (or as --half says): half the file, and on the CPU inference then
        # runs float16-weight kernels. Decided on dev, as the model was; the figures stored with
        # the file (and quoted in the README) are the shipped file's.
        args.bundle_dir.mkdir(parents=True, exist_ok=True)
        target = args.bundle_dir / f"{args.name}.pt"
        # The second passes recorded for the model being replaced are chosen anew for this one,
        # with those --partner asks for.
        previous = read_settings(tuning_path(target)).get("partners") or {} if tuning_path(target).is_file() else {}
        partners = list(dict.fromkeys([*previous, *args.partner]))
        half = args.half == "yes"
        if args.half == "auto":
            save_model(target, model, half=True, metadata=model.metadata)
            half_dev = evaluate_sets(target, {"dev": dev})["dev"]
            half = half_dev["wer"] == results["dev"]["wer"] and half_dev["cer"] <= results["dev"]["cer"]
            print(f"dev greedy, float16 weights: {half_dev['wer']:.2f}% WER, {half_dev['cer']:.2f}% CER", file=sys.stderr)
        print(f"shipping float{16 if half else 32}", file=sys.stderr)
        save_model(target, model, half=half, metadata=model.metadata)
        shipped = evaluate_sets(target, {"test": test})["test"]
        info = {**model.metadata, "an4_test_wer": shipped["wer"], "an4_test_cer": shipped["cer"], "float16": half}
        if lm_info is not None:
            # The LM and lexicon ship beside the models; the tuned settings travel as NAME.lm.json.
            for name in (lm_info["arpa"], lm_info["lexicon"]):
                shutil.copyfile(exp / "lm" / name, args.bundle_dir / name)
            settings = read_settings(tuning_path(best))
            settings.update(lm=lm_info["arpa"], lexicon=lm_info["lexicon"])
            if settings.get("rescore"):
                # The partner ships beside the model (a bundled model, or bundled first).
                partner = resolve_model_path(args.rescore_with)
                if partner.resolve() != (args.bundle_dir / partner.name).resolve():
                    raise SystemExit(f"--bundle with --rescore-with: {partner} must be a model in {args.bundle_dir}")
                settings["rescore"]["model"] = partner.name
            write_atomic(tuning_path(target), json.dumps(settings, indent=2) + "\n")
            search = beam_search_for(load_model(target))
            shipped_lm = evaluate(load_model(target), test, search=search).summary()
            # The LM figures live with the LM settings, which `speechrnn lm tune` may change
            # without touching the model file (tests/test_an4.py recomputes them). The tuning's
            # dev figures are the float32 weights'; float16 ones can differ by a word with the LM.
            settings["an4_test"] = {"wer": shipped_lm["wer"], "cer": shipped_lm["cer"]}
            shipped_dev_lm = evaluate(load_model(target), dev, search=search).summary()
            settings["an4_dev"] = {"wer": shipped_dev_lm["wer"], "cer": shipped_dev_lm["cer"]}
            write_atomic(tuning_path(target), json.dumps(settings, indent=2) + "\n")
            results[f"dev + LM (bundled, float{16 if half else 32})"] = shipped_dev_lm
            results[f"test + LM (bundled, float{16 if half else 32})"] = shipped_lm
        save_model(target, model, half=half, metadata=info)
        results[f"test (bundled, float{16 if half else 32})"] = shipped
        if lm_info is not None:
            retune_partners(target, partners, dev, test)
    write_results(Path(args.results), args, config, stages, results, model.n_params, lm_info, model.metadata)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
