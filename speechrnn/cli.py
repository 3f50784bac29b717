"""The ``speechrnn`` command: argument parsing only; the work is done by the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torchaudio

from . import __version__
from .audio import STDIN
from .decoding import HOT_WORD_BOOST, parse_hot_word, read_hot_words
from .files import write_atomic
from .output import FORMATS, OutputNamer, render, to_json
from .rescoring import RESCORE_GROWTH
from .segment import MIN_SEGMENT_SECONDS, SegmentConfig
from .streaming import EndpointConfig
from .transcribe import BATCH_SIZE
from .tuning import LM_WEIGHTS, RESCORE_WEIGHTS, TUNED_BEAM_SIZES, WORD_SCORES


def add_decoding_options(p: argparse.ArgumentParser, nbest: bool = False) -> None:
    g = p.add_argument_group("decoding (beam search with a word LM)")
    g.add_argument("--lm", default="default", metavar="PATH|none", help="ARPA word LM, or 'none' for greedy decoding (default: the model's tuned LM if it has one)")
    g.add_argument("--lexicon", metavar="PATH|none", help="only spell this lexicon's words, or 'none' for any letters (default: the tuned setting; none with --lm PATH)")
    g.add_argument("--lm-weight", type=float, help="weight of the LM (default: the tuned value)")
    g.add_argument("--word-score", type=float, help="bonus per word (default: the tuned value)")
    g.add_argument("--beam-size", type=int, help="hypotheses kept per frame (default: the tuned value, else 32)")
    add_hot_word_options(g)
    g.add_argument(
        "--rescore", default="default", metavar="MODEL|none",
        help="re-rank the beam search's n best with this model's CTC likelihood, or 'none' (default: the tuned second pass, if any, with the tuned LM)",
    )
    g.add_argument("--rescore-weight", type=float, help="weight of the rescoring model (default: the one tuned for it in the model's settings, else 0.25)")
    if nbest:
        g.add_argument("--nbest", type=int, help="with --format jsonl, also list the N best transcripts and their scores")


def add_remove_dc_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--remove-dc", action="store_true",
        help="take a constant offset (DC) out of the audio first, as some sound cards add one (a high-pass at 2.5 Hz; transcribe and live warn of an input that has one)",
    )
    p.add_argument(
        "--remove-hum", type=mains_frequency, metavar="HZ",
        help="take mains hum at HZ (50 or 60; 40-70 taken, for a grid off its nominal frequency) out of the audio first, as a ground loop adds it (notches at HZ and its multiples up to the 8th; transcribe and live warn of an input that has hum)",
    )


def mains_frequency(text: str) -> float:
    """--remove-hum's value: a frequency in Hz, of a mains hum's range (40-70 Hz)."""
    try:
        hz = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of Hz (50 or 60)") from None
    if not 40 <= hz <= 70:
        raise argparse.ArgumentTypeError(f"{text} Hz is no mains frequency (50 or 60)")
    return hz


def add_hot_word_options(group, tuning: bool = False) -> None:
    group.add_argument(
        "--hot-word", action="append", default=[], metavar="WORD[:BOOST]",
        help="a word the search can spell (one the lexicon lacks joins it), BOOST added to a transcript's score each time"
        f" it is spelled (default {HOT_WORD_BOOST:g}; negative: avoid the word, which then joins no lexicon); a phrase"
        " (\"new york:3\") is boosted where its words come in a row; repeat for more"
        + ("; tuned with them, the settings keep them (with a boost, LM weight 0 is not tried)" if tuning else ""),
    )
    group.add_argument(
        "--hot-words", action="append", default=[], metavar="FILE",
        help="a file of hot words and phrases, one WORDS[:BOOST] a line (# begins a comment), as --hot-word gives them",
    )


def hot_words_of(args, tokenizer) -> tuple[tuple[str, float], ...]:
    """``--hot-words`` files' hot words, then ``--hot-word``'s."""
    pairs = [pair for path in args.hot_words for pair in read_hot_words(path, HOT_WORD_BOOST, tokenizer)]
    return tuple(pairs) + tuple(parse_hot_word(text, HOT_WORD_BOOST) for text in args.hot_word)


def beam_search(args, model):
    from .decoding import beam_search_for

    if str(args.lm) == "none" and args.rescore not in ("default", "none"):
        print(f"speechrnn: warning: --rescore {args.rescore} re-ranks a beam search's n best; greedy decoding (--lm none) has none, so it is not used", file=sys.stderr)
    search_options = {"--lexicon": args.lexicon, "--lm-weight": args.lm_weight, "--word-score": args.word_score, "--beam-size": args.beam_size}
    if str(args.lm) == "none" and (given := [name for name, value in search_options.items() if value is not None]):
        print(f"speechrnn: warning: {', '.join(given)} set a beam search; greedy decoding (--lm none) has none, so {'they are' if len(given) > 1 else 'it is'} not used", file=sys.stderr)
    if str(args.lm) not in ("default", "none") and os.path.isdir(args.lm):
        raise ValueError(f"--lm {args.lm}: is a directory, not an ARPA file")
    hot_words = hot_words_of(args, model.tokenizer)
    return beam_search_for(
        model,
        args.lm,
        args.lexicon,
        rescore=args.rescore,
        rescore_weight=args.rescore_weight,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
        beam_size=args.beam_size,
        nbest=getattr(args, "nbest", None),
        hot_words=hot_words or None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechrnn", description="Speech recognition with GRU-CTC models.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and NumPy (default: their own choice)")
    parser.add_argument("--version", action="version", version=f"speechrnn {__version__} (torch {torch.__version__}, torchaudio {torchaudio.__version__})")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("transcribe", help="transcribe audio files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files, or folders searched recursively; - reads one file from standard input")
    p.add_argument("--model", default="offline", help="bundled model name or model file (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: %(default)s)")
    p.add_argument("--output-dir", help="write one file per input here instead of printing")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="utterances per forward pass (default: %(default)s)")
    p.add_argument(
        "--max-segment", type=float, default=SegmentConfig.max_seconds, metavar="SECONDS",
        help="a bidirectional model reads longer files in pieces cut at pauses, at most this long (default: %(default)s; 0: read whole)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_remove_dc_option(p)
    add_decoding_options(p, nbest=True)
    p.set_defaults(func=cmd_transcribe)

    p = commands.add_parser("evaluate", help="WER/CER of a model on AN4 or on a manifest")
    p.add_argument("--model", default="offline", help="bundled model name or model file (default: %(default)s)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--manifest", help="JSON-lines manifest with 'audio' and 'text' per line")
    source.add_argument("--an4", nargs="?", const="", metavar="FOLDER", help="AN4 folder (the default source; FOLDER defaults to $SPEECHRNN_AN4, else ../shared/data/an4)")
    p.add_argument("--split", choices=("train", "dev", "test"), help="AN4 split; dev: the speaker-disjoint part of train that recipes/an4 holds out (default: test)")
    p.add_argument("--details", help="write each utterance's reference and hypothesis here (JSON lines)")
    add_remove_dc_option(p)
    add_decoding_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("live", help="live transcription from a microphone (or a file fed as a stream)")
    p.add_argument("--model", default="streaming", help="unidirectional model name or file (default: %(default)s)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format (default: %(default)s)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--device", help="input device index or name (default: the system's default input)")
    p.add_argument("--sample-rate", type=int, help="record at this rate in Hz, resampled to 16 kHz (default: the device's own rate)")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per recognition step (default: %(default)s)")
    p.add_argument("--from-file", metavar="F", help="stream this file instead of the microphone; - streams standard input as it arrives (a WAV stream, or raw 16-bit samples with --raw-rate)")
    p.add_argument("--raw-rate", type=int, metavar="HZ", help="with --from-file -: standard input is headerless 16-bit little-endian mono samples at this rate")
    p.add_argument("--realtime", action="store_true", help="with --from-file: feed at real-time pace")
    p.add_argument("--no-endpoint", action="store_true", help="one utterance for the whole stream")
    p.add_argument(
        "--no-tentative",
        action="store_true",
        help="partials show only frames whose look-ahead has arrived (steadier, up to a chunk later)",
    )
    p.add_argument(
        "--rescore-partials",
        action="store_true",
        help="with a second pass (--rescore), re-rank partials by it too, so they show the words the final keeps more often (a bidirectional rescoring model reads the utterance again each time; a unidirectional one streams beside the first pass)",
    )
    p.add_argument(
        "--rescore-growth",
        type=float,
        default=RESCORE_GROWTH,
        metavar="G",
        help="with --rescore-partials: re-rank once the utterance has grown by this share since the last re-ranking; lower shows the second pass's choice sooner and costs more, 0 re-ranks every partial (default: %(default)s)",
    )
    p.add_argument("--trailing-silence", type=float, default=EndpointConfig.trailing_silence, help="seconds of silence that end an utterance (default: %(default)s)")
    p.add_argument("--no-speech", type=float, default=EndpointConfig.no_speech, help="seconds without speech that restart an utterance (default: %(default)s)")
    p.add_argument("--max-utterance", type=float, default=EndpointConfig.max_utterance, help="longest utterance in seconds (default: %(default)s)")
    add_remove_dc_option(p)
    add_decoding_options(p)
    p.set_defaults(func=cmd_live)

    lm = commands.add_parser("lm", help="word language models: build one, tune a model's decoding").add_subparsers(dest="lm_command", required=True)
    p = lm.add_parser("build", help="word n-gram LM (ARPA, modified Kneser-Ney) and lexicon from transcripts")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="transcript files: one utterance per line (AN4 .transcription files too), or JSON-lines manifests (their 'text')")
    p.add_argument("--an4-train", nargs="?", const="", metavar="AN4", help="also the transcripts recipes/an4 trains on: AN4 train without its dev split")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write")
    p.add_argument("--lexicon", help="lexicon file to write (default: beside the ARPA file, .lexicon.txt)")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default: %(default)s)")
    p.set_defaults(func=cmd_lm_build)

    p = lm.add_parser("tune", help="choose LM weight and word bonus (and the best of several LMs and beam sizes) on a dev set; write them beside the model")
    p.add_argument("--model", default="offline", help="bundled model name or model file (default: %(default)s)")
    p.add_argument("--lm", required=True, nargs="+", help="ARPA word LM; several (say orders 2-5 of the same text): each is tuned and the best kept")
    p.add_argument("--lexicon", help="lexicon (default: lexicon-free search)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="dev set: JSON-lines manifest with 'audio' and 'text' per line")
    source.add_argument("--an4-dev", nargs="?", const="", metavar="AN4", help="dev set: the speaker-disjoint split of AN4 train that recipes/an4 holds out")
    p.add_argument("--lm-weights", default=",".join(map(str, LM_WEIGHTS)), help="LM weights to try (default: %(default)s)")
    p.add_argument("--word-scores", default=",".join(map(str, WORD_SCORES)), help="word bonuses to try (default: %(default)s)")
    p.add_argument(
        "--beam-size", type=int, nargs="+", default=list(TUNED_BEAM_SIZES),
        help="beam sizes to try with each LM (default: %(default)s); a tie goes to the smaller beam, then to the LM named first",
    )
    add_hot_word_options(p, tuning=True)
    p.add_argument("--rescore-model", help="also tune a second pass: this model re-ranks the n best (name or file; weight 0 chosen: none)")
    p.add_argument("--rescore-weights", default=",".join(map(str, RESCORE_WEIGHTS)), help="rescoring weights to try (default: %(default)s)")
    p.add_argument("-o", "--output", help="settings file (default: MODEL.lm.json beside the model file; required for a bundled model)")
    p.set_defaults(func=cmd_lm_tune)
    return parser


def cmd_live(args) -> int:
    from . import live
    from .streaming import StreamingRecognizer

    if args.list_devices:
        devices = live.list_devices()
        if not devices:
            print("speechrnn: error: PortAudio finds no audio device (is a sound server or card there?)", file=sys.stderr)
            return 1
        print(devices)
        return 0
    if args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    if args.sample_rate is not None and args.sample_rate <= 0:
        raise ValueError(f"--sample-rate must be positive, got {args.sample_rate}")
    if args.rescore_growth < 0:
        raise ValueError(f"--rescore-growth must be 0 or more, got {args.rescore_growth}")
    if args.raw_rate is not None and args.from_file != STDIN:
        raise ValueError(f"--raw-rate is the rate of headerless samples on standard input: give it with --from-file -{f', not --from-file {args.from_file}' if args.from_file else ''}")
    if args.realtime and not args.from_file:
        raise ValueError("--realtime paces a file (--from-file F); a microphone is real time already")
    if args.from_file and (args.device is not None or args.sample_rate is not None):
        print("speechrnn: warning: --device and --sample-rate choose how a microphone records; with --from-file they are not used", file=sys.stderr)
    endpoint = None if args.no_endpoint else EndpointConfig(args.trailing_silence, args.no_speech, args.max_utterance)
    # The source is opened before the model loads, so that a bad file, standard input that is
    # not audio or a device that cannot record is reported at once.
    if args.from_file == STDIN:
        chunks = live.stdin_chunks(args.chunk_ms, args.raw_rate)
    elif args.from_file:
        chunks = live.file_chunks(args.from_file, args.chunk_ms, args.realtime)
    else:
        device = int(args.device) if args.device and args.device.isdigit() else (args.device or None)
        try:
            chunks = live.Microphone(device, args.chunk_ms, sample_rate=args.sample_rate)
        except Exception as error:  # PortAudio reports device problems with its own exception type
            hint = " (is a sound server or card there? speechrnn live --list-devices)" if "-1" in str(error) else ""
            raise ValueError(f"cannot open input device {args.device or '(default)'}: {error}{hint}") from None
    from .model import load_model

    model = load_model(args.model)
    recognizer = StreamingRecognizer(model, endpoint=endpoint, lm=beam_search(args, model), tentative=not args.no_tentative, rescore_partials=args.rescore_partials, rescore_growth=args.rescore_growth, remove_dc=args.remove_dc, remove_hum=args.remove_hum)
    if args.rescore_partials and recognizer.rescorer is None:
        print("speechrnn: warning: --rescore-partials re-ranks partials by a second pass; there is none (give --rescore MODEL with the LM), so it is not used", file=sys.stderr)
    printer = live.Printer(args.format)
    if args.from_file == STDIN:  # a pipe arrives at its own pace: --realtime has nothing to pace
        return live.run(recognizer, chunks, printer)
    if args.from_file:
        # Like a microphone, a real-time stream says when it starts.
        started = f"speechrnn: streaming {args.from_file} in real time; Ctrl-C to stop" if args.realtime else ""
        return live.run(recognizer, chunks, printer, started=started)
    with chunks as microphone:
        started = f"speechrnn: listening on {microphone.name!r} ({microphone.sample_rate} Hz, {microphone.channels} ch); Ctrl-C to stop"
        return live.run(recognizer, microphone, printer, started=started)


def cmd_transcribe(args) -> int:
    from .model import load_model
    from .transcribe import expand_inputs, transcribe_files

    try:  # (SegmentConfig's own check, before any file is read)
        if args.max_segment != 0:
            SegmentConfig(max_seconds=args.max_segment)
    except ValueError:
        print(f"speechrnn: error: --max-segment must be 0 (read files whole) or at least {MIN_SEGMENT_SECONDS:g} seconds, got {args.max_segment:g}", file=sys.stderr)
        return 2
    if args.nbest and args.nbest > 1 and args.format != "jsonl":
        print(f"speechrnn: warning: --nbest lists transcripts in --format jsonl only; --format {args.format} shows the best", file=sys.stderr)
    if args.output_dir and os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        print(f"speechrnn: error: --output-dir {args.output_dir}: is a file, not a folder", file=sys.stderr)
        return 2
    model = load_model(args.model)
    paths = expand_inputs(args.paths)
    if not paths:
        print("speechrnn: error: no audio files found", file=sys.stderr)
        return 1
    if args.format in ("srt", "vtt") and not args.output_dir and len(paths) > 1:
        # Subtitles of several files on one stream could not be told apart.
        print(f"speechrnn: error: --format {args.format} with {len(paths)} files needs --output-dir (one subtitle file per input)", file=sys.stderr)
        return 2
    namer = OutputNamer(args.output_dir, args.format, roots=[p for p in args.paths if os.path.isdir(p)]) if args.output_dir else None
    failed = 0

    progress = not args.no_progress and len(paths) > 1 and sys.stderr.isatty()

    def report(message: str) -> None:
        if progress:  # above the progress bar, not into it
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def emit(result):
        nonlocal failed
        for warning in result.warnings:
            report(f"speechrnn: warning: {warning}")
        if result.error is not None:
            failed += 1
            report(f"speechrnn: error: {result.error}")
            if args.format == "jsonl" and namer is None:
                print(json.dumps(to_json(result)), flush=True)
            return
        text = render(result, args.format, nbest=bool(args.nbest and args.nbest > 1))
        if namer is not None:
            target = namer(result.audio)
            try:
                write_atomic(target, text)
            except OSError as error:  # this output cannot be written (a name too long, a full disk): the others still are
                failed += 1
                report(f"speechrnn: error: {result.audio}: cannot write {target} ({error.strerror or error})")
        elif args.format == "text" and (len(paths) > 1 or any(os.path.isdir(p) for p in args.paths)):  # (which file of a folder)
            print(f"{result.audio}\t{text}", end="", flush=True)
        else:
            print(text, end="", flush=True)

    transcribe_files(model, paths, batch_size=args.batch_size, on_result=emit, progress=progress, search=beam_search(args, model), max_segment=args.max_segment, remove_dc=args.remove_dc, remove_hum=args.remove_hum)
    return 1 if failed else 0


def labelled_set(manifest: str | None, an4: str | None, split: str):
    """``(utterances, description)`` from a manifest, or from an AN4 folder's ``train``,
    ``test`` or ``dev`` (the split recipes/an4 holds out of train) utterances."""
    from .data import DEFAULT_AN4, an4_dev_split, an4_utterances, read_manifest

    if manifest:
        utterances = read_manifest(manifest)
        scored = [u for u in utterances if u.text]
        if len(scored) < len(utterances):  # an error rate is per reference word: none, none to score
            warnings.warn(f"{manifest}: {len(utterances) - len(scored)} of {len(utterances)} utterances have no words once normalised and are left out", stacklevel=2)
        if not scored:
            raise ValueError(f"{manifest}: no utterance with words to score")
        return scored, manifest
    root = an4 or str(DEFAULT_AN4)
    if split == "dev":
        return an4_dev_split(root), f"AN4 dev split of train ({root})"
    return an4_utterances(root, split), f"AN4 {split} ({root})"


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate
    from .model import load_model

    model = load_model(args.model)
    if args.manifest and args.split:
        raise ValueError(f"--split chooses a part of AN4; a manifest ({args.manifest}) is scored whole")
    utterances, source = labelled_set(args.manifest, args.an4, args.split or "test")
    search = beam_search(args, model)
    if search is not None and search.arpa is not None:
        warn_oov(search, utterances, source)
    result = evaluate(model, utterances, search=search, remove_dc=args.remove_dc, remove_hum=args.remove_hum)
    if args.details:
        lines = [json.dumps({"audio": u.audio, "reference": u.text, "hypothesis": h.text}) for u, h in zip(utterances, result.hypotheses)]
        write_atomic(Path(args.details), "\n".join(lines) + "\n")
    decoding = "greedy" if search is None else {k: v for k, v in search.config.to_dict().items() if k != "nbest"}
    if search is not None and search.rescorer is not None:
        decoding["rescore"] = search.rescorer.config.to_dict()
    print(json.dumps({"model": model.source, "data": source, "decoding": decoding, **({"remove_dc": True} if args.remove_dc else {}), **({"remove_hum": args.remove_hum} if args.remove_hum is not None else {}), **result.summary()}))
    return 0


def warn_oov(search, utterances, source: str) -> None:
    """Say on stderr how many reference words the LM (and lexicon) cannot produce."""
    words = [w for u in utterances for w in u.text.split()]
    known = search.arpa.vocabulary if search.lexicon is None else set(search.lexicon)
    missing = sorted({w for w in words if w not in known})
    if missing:
        share = 100 * sum(w not in known for w in words) / max(1, len(words))
        where = search.config.lexicon or search.config.lm
        print(f"speechrnn: warning: {share:.1f}% of the words of {source} are not in {where} ({len(missing)} distinct: {' '.join(missing[:10])}{' ...' if len(missing) > 10 else ''})", file=sys.stderr)


def cmd_lm_build(args) -> int:
    from .data import DEFAULT_AN4, an4_train_split
    from .lm import build_lm_files

    if not args.texts and args.an4_train is None:
        raise ValueError("no transcripts: give TEXT files or --an4-train")
    lexicon = args.lexicon or str(Path(args.output).with_suffix("")) + ".lexicon.txt"
    with tempfile.TemporaryDirectory() as folder:
        texts = list(args.texts)
        if args.an4_train is not None:
            texts.append(Path(folder) / "an4-train.txt")
            texts[-1].write_text("".join(u.text + "\n" for u in an4_train_split(args.an4_train or DEFAULT_AN4)))
        summary = build_lm_files(texts, args.output, lexicon, args.order)
    print(json.dumps({"arpa": args.output, "lexicon": lexicon, **summary}))
    return 0


def cmd_lm_tune(args) -> int:
    from .decoding import tuning_path
    from .model import BUNDLED_DIR, load_model, resolve_model_path
    from .tuning import choose_rescoring, search_configs, tune, with_rescoring, write_tuning

    model = load_model(args.model)
    if args.output is None and Path(model.source).resolve().parent == BUNDLED_DIR.resolve():
        raise ValueError(f"--model {args.model} is a bundled model: give -o FILE for the tuned settings (beside the model they would replace its shipped ones)")
    utterances, source = labelled_set(args.manifest, args.an4_dev, "dev")
    configs = search_configs(args.lm, args.lexicon, args.beam_size, hot_words_of(args, model.tokenizer))
    result = tune(model, utterances, configs, parse_floats(args.lm_weights), parse_floats(args.word_scores), log=sys.stderr)
    if args.rescore_model:
        chosen = choose_rescoring(model, utterances, result.best, resolve_model_path(args.rescore_model), weights=parse_floats(args.rescore_weights), log=sys.stderr)
        result = with_rescoring(result, chosen)
    output = Path(args.output) if args.output else tuning_path(model.source)
    write_tuning(output, result, source)
    summary = {"settings": str(output), "lm": result.best.lm, "beam_size": result.best.beam_size, "lm_weight": result.best.lm_weight, "word_score": result.best.word_score}
    if args.rescore_model:
        summary.update(rescore=result.rescore.to_dict() if result.rescore else None, first_pass_dev_wer=round(result.first_pass_wer, 2))
    print(json.dumps({**summary, "dev_wer": round(result.dev_wer, 2), "greedy_dev_wer": round(result.greedy_wer, 2)}))
    return 0


def parse_floats(text: str) -> list[float]:
    try:
        numbers = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise ValueError(f"not a comma-separated list of numbers: {text!r}")
    return numbers


def _warning_printer(python_shows):
    """A ``warnings.showwarning`` that prints speechrnn's own warnings (a file's skipped lines,
    an LM missing words) as the CLI's lines on stderr, without Python's source location, and
    leaves other packages' warnings to ``python_shows``."""
    package = Path(__file__).resolve().parent

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if Path(filename).resolve().is_relative_to(package):
            print(f"speechrnn: warning: {message}", file=sys.stderr)
        else:
            python_shows(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        from .streaming import set_threads

        try:
            set_threads(args.threads)
        except ValueError as error:
            parser.error(f"--threads: {error}")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(warnings.showwarning)
            return args.func(args)
    except BrokenPipeError:
        # Whoever read stdout has gone (`speechrnn live | head`): stop quietly, as a Unix tool
        # killed by SIGPIPE does (status 128 + 13), and keep Python's own flush at exit from
        # failing on the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"speechrnn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
