"""The ``speechrnn`` command: argument parsing only; the work is done by the library."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .output import FORMATS, OutputNamer, render, to_json, write_atomic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechrnn", description="Speech recognition with GRU-CTC models.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("transcribe", help="transcribe audio files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files, or folders searched recursively")
    p.add_argument("--model", default="offline", help="bundled model name or model file (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: %(default)s)")
    p.add_argument("--output-dir", help="write one file per input here instead of printing")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_transcribe)

    p = commands.add_parser("evaluate", help="WER/CER of a model on AN4 or on a manifest")
    p.add_argument("--model", default="offline", help="bundled model name or model file (default: %(default)s)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--manifest", help="JSON-lines manifest with 'audio' and 'text' per line")
    source.add_argument("--an4", nargs="?", const="", default="", help="AN4 folder (default: ../shared/data/an4)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="AN4 split (default: %(default)s)")
    p.add_argument("--details", help="write each utterance's reference and hypothesis here (JSON lines)")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("live", help="live transcription from a microphone (or a file fed as a stream)")
    p.add_argument("--model", default="streaming", help="unidirectional model name or file (default: %(default)s)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format (default: %(default)s)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--device", help="input device index or name (default: the system's default input)")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per recognition step (default: %(default)s)")
    p.add_argument("--from-file", metavar="F", help="stream this file instead of the microphone")
    p.add_argument("--realtime", action="store_true", help="with --from-file: feed at real-time pace")
    p.add_argument("--no-endpoint", action="store_true", help="one utterance for the whole stream")
    p.add_argument("--trailing-silence", type=float, default=0.8, help="seconds of silence that end an utterance")
    p.add_argument("--no-speech", type=float, default=2.4, help="seconds without speech that restart an utterance")
    p.add_argument("--max-utterance", type=float, default=20.0, help="longest utterance in seconds")
    p.set_defaults(func=cmd_live)
    return parser


def cmd_live(args) -> int:
    from . import live
    from .streaming import EndpointConfig, StreamingRecognizer

    if args.list_devices:
        print(live.list_devices())
        return 0
    if args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    endpoint = None if args.no_endpoint else EndpointConfig(args.trailing_silence, args.no_speech, args.max_utterance)
    recognizer = StreamingRecognizer(args.model, endpoint=endpoint)
    printer = live.Printer(args.format)
    if args.from_file:
        return live.run(recognizer, live.file_chunks(args.from_file, args.chunk_ms, args.realtime), printer)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    try:
        microphone = live.Microphone(device, args.chunk_ms)
    except Exception as error:  # PortAudio reports device problems with its own exception type
        raise ValueError(f"cannot open input device {args.device or '(default)'}: {error}") from None
    with microphone:
        print(f"speechrnn: listening on {microphone.name!r} ({microphone.sample_rate} Hz, {microphone.channels} ch); Ctrl-C to stop", file=sys.stderr)
        return live.run(recognizer, microphone, printer)


def cmd_transcribe(args) -> int:
    from .model import load_model
    from .transcribe import expand_inputs, transcribe_files

    model = load_model(args.model)
    paths = expand_inputs(args.paths)
    if not paths:
        print("speechrnn: error: no audio files found", file=sys.stderr)
        return 1
    namer = OutputNamer(args.output_dir, args.format) if args.output_dir else None
    failed = 0

    def emit(result):
        nonlocal failed
        if result.error is not None:
            failed += 1
            print(f"speechrnn: error: {result.error}", file=sys.stderr)
            if args.format == "jsonl" and namer is None:
                print(json.dumps(to_json(result)), flush=True)
            return
        text = render(result, args.format)
        if namer is not None:
            write_atomic(namer(result.audio), text)
        elif args.format == "text" and len(paths) > 1:
            print(f"{result.audio}\t{text}", end="", flush=True)
        else:
            print(text, end="", flush=True)

    progress = not args.no_progress and len(paths) > 1 and sys.stderr.isatty()
    transcribe_files(model, paths, batch_size=args.batch_size, on_result=emit, progress=progress)
    return 1 if failed else 0


def cmd_evaluate(args) -> int:
    from .data import DEFAULT_AN4, an4_utterances, read_manifest
    from .evaluate import evaluate
    from .model import load_model

    model = load_model(args.model)
    if args.manifest:
        utterances, source = read_manifest(args.manifest), args.manifest
    else:
        root = args.an4 or str(DEFAULT_AN4)
        utterances, source = an4_utterances(root, args.split), f"AN4 {args.split} ({root})"
    result = evaluate(model, utterances)
    if args.details:
        lines = [json.dumps({"audio": u.audio, "reference": u.text, "hypothesis": h.text}) for u, h in zip(utterances, result.hypotheses)]
        write_atomic(Path(args.details), "\n".join(lines) + "\n")
    print(json.dumps({"model": model.source, "data": source, **result.summary()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"speechrnn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
