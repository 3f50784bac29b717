"""`speechrnn live` end to end: from files, signals, and a real PortAudio capture from a
virtual microphone (a private PulseAudio null sink that a WAV is played into)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.model import BUNDLED_DIR, ModelConfig, SpeechModel, save_model

VIRTUAL_MIC = Path(__file__).resolve().parents[1] / ".." / "shared" / "tools" / "virtual-mic"
HAS_STREAMING = (BUNDLED_DIR / "streaming.pt").is_file()


@pytest.fixture(scope="module")
def tiny_streaming_model(tmp_path_factory):
    """An untrained unidirectional model: enough to check the plumbing, not the words."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, SpeechModel(ModelConfig(n_hidden=32, n_proj=32, n_layers=1, bidirectional=False, lookahead=1)))
    return str(path)


def speechrnn(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechrnn", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_from_file_without_endpoint_prints_what_transcribe_prints(tiny_streaming_model, speech_dir):
    wav = str(speech_dir[0] / "spell.wav")
    live = speechrnn("live", "--model", tiny_streaming_model, "--from-file", wav, "--no-endpoint", "--chunk-ms", "37")
    batch = speechrnn("transcribe", "--model", tiny_streaming_model, wav)
    assert live.wait(120) == 0 and batch.wait(120) == 0
    assert live.stdout.read() == batch.stdout.read()


def test_sigterm_and_sigint_finalize_the_last_utterance(tiny_streaming_model, speech_dir):
    wav = str(speech_dir[0] / "spell.wav")
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = speechrnn("live", "--model", tiny_streaming_model, "--format", "jsonl", "--no-endpoint", "--from-file", wav, "--realtime")
        started = proc.stderr.readline()  # after imports and model load, however long they take
        assert "in real time" in started, started
        first = proc.stdout.readline()  # the untrained model's first partial: audio is flowing
        assert json.loads(first)["type"] == "partial", first
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        events = events_of(first + out)
        assert events[-1]["type"] == "final", out
        assert 0 < events[-1]["end"] < sf.info(wav).duration  # stopped part-way, audio so far kept


def test_a_reader_that_goes_away_ends_the_session_quietly(tiny_streaming_model, speech_dir):
    """`speechrnn live ... | head -1`: the closed pipe ends the session with SIGPIPE's status
    and no error message."""
    wav = str(speech_dir[0] / "spell.wav")
    proc = speechrnn("live", "--model", tiny_streaming_model, "--format", "jsonl", "--no-endpoint", "--from-file", wav, "--realtime")
    assert json.loads(proc.stdout.readline())["type"] == "partial"
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr.read() == "speechrnn: streaming " + wav + " in real time; Ctrl-C to stop\n"


def test_bad_options_and_missing_file_are_clear_errors(tiny_streaming_model, speech_dir):
    proc = speechrnn("live", "--model", tiny_streaming_model, "--from-file", "/no/such.wav")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "/no/such.wav: no such file" in err
    proc = speechrnn("live", "--model", tiny_streaming_model, "--sample-rate", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--sample-rate must be positive, got 0" in err
    proc = speechrnn("live", "--model", tiny_streaming_model, "--rescore-growth", "-1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--rescore-growth must be 0 or more, got -1.0" in err
    proc = speechrnn("live", "--model", "offline", "--from-file", str(speech_dir[0] / "yes.wav"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and ("bidirectional" in err or "no bundled model" in err)


def test_rescored_partials_without_a_second_pass_is_a_warning(tiny_streaming_model, speech_dir):
    wav = str(speech_dir[0] / "spell.wav")
    proc = speechrnn("live", "--model", tiny_streaming_model, "--from-file", wav, "--no-endpoint", "--rescore-partials")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "warning: --rescore-partials re-ranks partials by a second pass; there is none" in err


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory):
    if not (VIRTUAL_MIC / "start.sh").is_file():
        pytest.skip(f"virtual microphone tool not found at {VIRTUAL_MIC}")
    if shutil.which("pulseaudio") is None and os.getuid() != 0:
        pytest.skip("PulseAudio is not installed and cannot be installed without root")
    state = tmp_path_factory.mktemp("vmic")
    env = {**os.environ, "VMIC_DIR": str(state)}
    started = subprocess.run(["bash", str(VIRTUAL_MIC / "start.sh")], capture_output=True, text=True, env=env, timeout=300)
    if started.returncode != 0:
        pytest.skip(f"PulseAudio cannot run here: {started.stderr.strip()[-300:]}")
    for line in started.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    yield env
    subprocess.run(["bash", str(VIRTUAL_MIC / "stop.sh")], env=env, timeout=60)


def record_live(model: str, wav: str, env: dict, extra: tuple = ()) -> tuple[list[dict], str, int]:
    """Start `speechrnn live` on the virtual mic, play ``wav`` into it, stop it with SIGTERM."""
    proc = speechrnn("live", "--model", model, "--format", "jsonl", *extra, env=env)
    deadline = time.time() + 120
    line = ""
    while "listening on" not in line:  # stderr says when the microphone is open
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "live exited before listening"
        assert time.time() < deadline, "live did not start listening"
    subprocess.run(["bash", str(VIRTUAL_MIC / "play.sh"), wav], env=env, check=True, timeout=120)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return events_of(out), line + err, proc.returncode


def test_live_records_from_a_real_portaudio_device(virtual_mic, tiny_streaming_model, speech_dir):
    wav = str(speech_dir[0] / "spell.wav")
    events, err, code = record_live(tiny_streaming_model, wav, virtual_mic, ("--no-endpoint",))
    assert code == 0, err
    assert events and events[-1]["type"] == "final"
    # The stream covers at least the played audio: the capture really delivered samples.
    assert events[-1]["end"] >= sf.info(wav).duration


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
@pytest.mark.parametrize("options", [(), ("--device", "pulse", "--sample-rate", "48000")], ids=["default-device", "named-device-48kHz"])
def test_live_transcribes_speech_played_into_the_microphone(virtual_mic, speech_dir, options):
    """The default input at its own rate (44.1 kHz stereo here), and a device chosen by name
    recorded at 48 kHz stereo, as many USB microphones deliver."""
    folder, phrases = speech_dir
    events, err, code = record_live("streaming", str(folder / "enter.wav"), virtual_mic, options)
    assert code == 0, err
    if options:
        assert "listening on 'pulse' (48000 Hz, 2 ch)" in err, err
    finals = [e["text"] for e in events if e["type"] == "final" and e["text"]]
    assert jiwer.wer(phrases["enter"], " ".join(finals)) <= 0.34, (finals, err)
    assert len(finals) == 1, finals  # one phrase, one final: no letter read into the silence after it


class FakeMicrophone:
    """Yields chunks of a file, reports overflows and a backlog, then disappears."""

    def __init__(self, samples, n_chunks: int, backlogs: dict | None = None):
        self.samples, self.n_chunks, self.overflows = samples, n_chunks, 0
        self.backlogs, self.backlog_seconds = backlogs or {}, 0.0

    def __iter__(self):
        from speechrnn.live import Chunk, SourceLost

        for i in range(self.n_chunks):
            if i == 2:
                self.overflows += 1
            self.backlog_seconds = self.backlogs.get(i, 0.0)
            yield Chunk(self.samples[i * 4410 : (i + 1) * 4410], 44100)
        raise SourceLost("input device 'fake' stopped: no audio is arriving")


def test_a_microphone_that_disappears_ends_the_session_with_the_utterance_kept(tiny_streaming_model, speech_dir):
    import io

    from speechrnn.audio import load_audio, resample
    from speechrnn.live import Printer, run
    from speechrnn.streaming import StreamingRecognizer

    samples = resample(load_audio(speech_dir[0] / "spell.wav"), 16000, 44100)
    out, log = io.StringIO(), io.StringIO()
    # Recognition falls 2.5 s behind, stays behind, catches up, falls behind again: two warnings.
    backlogs = {3: 2.5, 4: 3.0, 5: 1.0, 6: 0.2, 7: 2.2}
    status = run(StreamingRecognizer(tiny_streaming_model, endpoint=None), FakeMicrophone(samples, 10, backlogs), Printer("jsonl", out), log)
    assert status == 1
    assert "input overflow, 1 block(s) of audio lost" in log.getvalue()
    assert re.findall(r"recognition is (\S+) s behind the microphone", log.getvalue()) == ["2.5", "2.2"]
    assert "speechrnn: error: input device 'fake' stopped" in log.getvalue()
    final = events_of(out.getvalue())[-1]
    assert final["type"] == "final" and final["end"] == pytest.approx(1.0, abs=0.05)  # 10 chunks of 0.1 s


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
@pytest.mark.parametrize(
    "second_pass",
    [[], ["--rescore", "offline"], ["--rescore", "streaming", "--rescore-weight", "2"], ["--rescore", "streaming-partner"]],
    ids=["first-pass", "offline-partner", "itself-as-partner", "bundled-streaming-partner"],
)
def test_bundled_streaming_model_with_its_lm_live_equals_transcribe(speech_dir, second_pass):
    """The same promise with the bundled model's default decoding (beam search with the AN4
    LM), with the offline model's second pass, and with a unidirectional second pass (the
    model itself, and the bundled streaming partner), which live streams beside the first pass
    and transcribe runs over the file."""
    wav = str(speech_dir[0] / "enter.wav")
    live = speechrnn("live", "--from-file", wav, "--no-endpoint", "--chunk-ms", "100", *second_pass)
    batch = speechrnn("transcribe", "--model", "streaming", wav, *second_pass)
    assert live.wait(120) == 0 and batch.wait(120) == 0
    text = batch.stdout.read()
    assert text.strip() and live.stdout.read() == text


def test_a_device_that_fails_to_stop_or_close_is_a_warning(capsys):
    """A microphone that went away can make PortAudio fail to stop or close the stream: the
    session's utterances are out by then, so a warning on stderr, not a traceback."""
    import sounddevice as sd

    from speechrnn.live import Microphone

    class GoneStream:
        def stop(self):
            raise sd.PortAudioError("Stream is stopped", -9983)

        def close(self):
            raise sd.PortAudioError("Device unavailable", -9985)

    microphone = Microphone.__new__(Microphone)  # no real device: only what __exit__ uses
    microphone.name, microphone._stream = "usb mic", GoneStream()
    microphone.__exit__(None, None, None)
    err = capsys.readouterr().err
    assert "warning: closing input device 'usb mic': Stream is stopped" in err
    assert "warning: closing input device 'usb mic': Device unavailable" in err


def stream_finals(recognizer, wave: np.ndarray, chunk: int = 1600) -> list:
    """The finals of ``wave`` fed in ``chunk``-sample chunks (100 ms), the last one's from ``finalize``."""
    chunks = (wave[start : start + chunk] for start in range(0, len(wave), chunk))
    return [e for chunk in chunks for e in recognizer.accept_waveform(chunk) if e.type == "final"] + [recognizer.finalize()]


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
def first_restart(recognizer, wave: np.ndarray, chunk: int):
    """The stream state just after the first endpoint when ``wave`` is fed in ``chunk``-sample chunks (or None)."""
    for start in range(0, len(wave), chunk):
        if any(e.type == "final" for e in recognizer.accept_waveform(wave[start : start + chunk])):
            return recognizer.state
    return None


def chunk_holding_a_frame(model, wave: np.ndarray) -> int:
    """A chunk size (of an odd number of frames) whose first endpoint in ``wave`` falls with a
    frame held back for stacking."""
    from speechrnn.streaming import StreamingRecognizer

    for chunk in range(1760, 4000, 320):  # 11, 13, ... 23 frames: the frame count at each chunk's end alternates odd and even
        state = first_restart(StreamingRecognizer(model, lm=None), wave, chunk)
        if state is not None and state.frames.shape[1] == 1:
            return chunk
    raise AssertionError("no chunking left a frame held back at the endpoint")


def two_phrases(folder) -> tuple[np.ndarray, int]:
    """Two phrases 1.5 s apart over a faint noise floor (-60 dB FS), and the second one's first sample."""
    from speechrnn.audio import load_audio

    first, second = load_audio(folder / "enter.wav"), load_audio(folder / "erase.wav")
    pause = np.zeros(24000, np.float32)
    wave = np.concatenate([pause[:8000], first, pause, second, pause[:16000]])
    return wave + 1e-3 * np.random.default_rng(0).standard_normal(len(wave)).astype(np.float32), 8000 + len(first) + len(pause)


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
@pytest.mark.parametrize("held_frame,rescored", [(False, False), (True, False), (False, True)])
def test_endpointing_restarts_on_real_speech_as_a_new_stream_would(speech_dir, held_frame, rescored):
    """Two phrases: endpointing gives one final each (no letter read into the pause), and the
    second utterance, which restarts the RNN and the level tracking at the frame after the
    first final, reads what a stream started there reads, with times counted from the
    stream's start; also when the endpoint falls with a frame held back for stacking, and with
    the LM and a second pass by the offline model, which re-ranks each utterance's final over
    that utterance's audio."""
    from speechrnn.decoding import beam_search_for
    from speechrnn.model import load_model
    from speechrnn.streaming import StreamingRecognizer

    folder, phrases = speech_dir
    model = load_model("streaming")
    wave, second_start = two_phrases(folder)
    chunk = chunk_holding_a_frame(model, wave) if held_frame else 1600  # 100 ms: never a held frame
    lm = beam_search_for(model, rescore="offline") if rescored else None
    finals = stream_finals(StreamingRecognizer(model, lm=lm), wave, chunk)
    spoken = [e for e in finals if e.text]
    assert len(spoken) == 2, [(e.text, e.start, e.end) for e in finals]
    assert jiwer.wer(phrases["enter"], spoken[0].text) <= 0.34 and jiwer.wer(phrases["erase"], spoken[1].text) <= 0.5
    restart = spoken[1].start
    assert spoken[0].end == restart and spoken[1].words[0].start >= second_start / 16000 - 0.1
    fresh = StreamingRecognizer(model, lm=lm, endpoint=None)
    fresh.accept_waveform(wave[round(restart * 16000) :])
    alone = fresh.finalize()
    assert alone.text == spoken[1].text
    assert [round(w.start + restart, 2) for w in alone.words] == [round(w.start, 2) for w in spoken[1].words]


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
def test_a_restart_normalises_a_held_back_frame_as_a_new_stream_would(speech_dir):
    """The frame a restarted utterance holds back for stacking is the one a stream started
    there computes, not one normalised by the level of the speech before."""
    from speechrnn.model import load_model
    from speechrnn.streaming import StreamingRecognizer, extract_chunk, init_state

    model = load_model("streaming")
    wave, _ = two_phrases(speech_dir[0])
    held = first_restart(StreamingRecognizer(model, lm=None), wave, chunk_holding_a_frame(model, wave))
    begin = round(held.frames_done * model.config.frame_shift * 16000)  # that frame's first sample
    feats, _ = extract_chunk(model, torch.from_numpy(wave[begin:])[None], init_state(model))
    torch.testing.assert_close(held.frames[0, 0], feats[0, 0])


def test_devices_are_listed_and_a_missing_one_is_a_clear_error(virtual_mic):
    listed = subprocess.run([sys.executable, "-m", "speechrnn", "live", "--list-devices"], capture_output=True, text=True, env=virtual_mic, timeout=60)
    assert listed.returncode == 0 and "default" in listed.stdout, listed.stderr
    missing = subprocess.run([sys.executable, "-m", "speechrnn", "live", "--device", "no such mic"], capture_output=True, text=True, env=virtual_mic, timeout=120)
    assert missing.returncode == 2 and "cannot open input device no such mic" in missing.stderr


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
def test_silence_and_steady_noise_give_no_words(speech_dir):
    """Digital silence, then white noise at -50 to -20 dB FS: no final has words (the no-speech
    rule restarts the empty utterance every 2.4 s), and speech after them is still read."""
    from speechrnn.audio import load_audio
    from speechrnn.streaming import StreamingRecognizer

    folder, phrases = speech_dir
    rng = np.random.default_rng(0)
    noise = [10 ** (db / 20) * rng.standard_normal(3 * 16000) for db in (-50, -40, -30, -20)]
    speech = load_audio(folder / "enter.wav")
    speech = speech + 1e-3 * rng.standard_normal(len(speech))
    wave = np.concatenate([np.zeros(3 * 16000), *noise, speech, np.zeros(16000)]).astype(np.float32)
    finals = stream_finals(StreamingRecognizer("streaming", lm=None), wave)
    spoken = [e for e in finals if e.text]
    assert len(spoken) == 1 and spoken[0].start >= 15.0 - 2.5, [(e.text, e.start, e.end) for e in finals]
    assert jiwer.wer(phrases["enter"], spoken[0].text) <= 0.34


def test_printer_rewrites_the_partial_in_place_on_a_terminal_and_prints_finals_as_lines():
    import io

    from speechrnn.live import Printer
    from speechrnn.streaming import Result

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    events = [Result("partial", "", 0.0, 0.1, []), Result("partial", "ent", 0.0, 0.5, []), Result("partial", "ent", 0.0, 0.6, []),
              Result("partial", "enter", 0.0, 0.8, []), Result("final", "enter", 0.0, 1.2, []), Result("partial", "", 1.2, 1.3, [])]
    for out, expected in ((Terminal(), "\r\033[Kent\r\033[Kenter\r\033[Kenter\n"), (io.StringIO(), "enter\n")):
        printer = Printer("text", out)
        for event in events:
            printer(event)
        assert out.getvalue() == expected  # unchanged partials are not rewritten; a pipe gets finals only


def test_a_partial_wider_than_the_terminal_shows_its_end_and_the_final_is_whole():
    import io

    from speechrnn.live import Printer
    from speechrnn.streaming import Result

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    printer = Printer("text", out, columns=12)
    for event in (Result("partial", "go to", 0.0, 0.5, []), Result("partial", "go to the next page", 0.0, 1.0, []),
                  Result("final", "go to the next page", 0.0, 1.5, [])):
        printer(event)
    # 11 characters at most: a twelfth would put the cursor past the edge and wrap the line
    assert out.getvalue() == "\r\033[Kgo to\r\033[K...ext page\r\033[Kgo to the next page\n"


@pytest.mark.skipif(not HAS_STREAMING, reason="no bundled streaming model")
def test_standard_input_streams_as_the_same_file_does(speech_dir, tmp_path):
    from speechrnn.audio import load_audio

    folder, _ = speech_dir
    samples = np.round(load_audio(folder / "enter.wav") * 32767).astype("<i2")  # 16 kHz, as a file the recognizer reads unresampled
    sf.write(tmp_path / "enter16.wav", samples, 16000, subtype="PCM_16")
    wav = bytearray((tmp_path / "enter16.wav").read_bytes())
    assert wav[36:40] == b"data"
    wav[4:8] = wav[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # a length left unknown, as a tool writing to a pipe leaves it

    def live(stdin: bytes | None, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "speechrnn", "live", "--format", "jsonl", "--chunk-ms", "100", *args], input=stdin, capture_output=True, timeout=300)

    from_file = live(None, "--from-file", str(tmp_path / "enter16.wav"))
    assert from_file.returncode == 0, from_file.stderr
    expected = events_of(from_file.stdout.decode())
    assert expected[-1]["type"] == "final" and expected[-1]["text"]
    streams = [(bytes(wav), ()), (samples.tobytes() + b"\x01", ("--raw-rate", "16000"))]  # raw: a stray byte at the end is dropped
    if shutil.which("sox"):  # the extended header sox writes for 24 bits and 4 channels; float samples (the same values)
        for options in (["-b", "24", "-c", "4"], ["-e", "float", "-b", "32", "-c", "2"]):
            streams.append((subprocess.run(["sox", str(tmp_path / "enter16.wav"), *options, "-t", "wav", "-"], capture_output=True, check=True).stdout, ()))
    for stdin, args in streams:
        piped = live(stdin, "--from-file", "-", *args)
        assert piped.returncode == 0, piped.stderr
        assert events_of(piped.stdout.decode()) == expected, args
    # Not a WAV stream, --raw-rate without standard input or not positive: a clear error, status 2.
    cases = [
        (b"hello", ("--from-file", "-"), "- (standard input): not a WAV stream"),
        (None, ("--from-file", str(tmp_path / "enter16.wav"), "--raw-rate", "16000"), "--raw-rate is the rate of headerless samples on standard input"),
        (b"", ("--from-file", "-", "--raw-rate", "0"), "--raw-rate must be a positive rate in Hz, got 0"),
    ]
    # A file that is not there, or --realtime without one: said before the model loads.
    cases += [
        (None, ("--from-file", str(tmp_path / "gone.wav"), "--realtime"), "gone.wav: no such file"),
        (None, ("--realtime",), "--realtime paces a file"),
    ]
    for stdin, args, message in cases:
        failed = live(stdin, *args)
        assert failed.returncode == 2 and message in failed.stderr.decode(), failed.stderr
        assert "in real time" not in failed.stderr.decode()  # (a session that never started does not say it did)
    # A header that gives the length as 0 holds nothing to stream: an error, not an empty session.
    wav[4:8] = wav[40:44] = (0).to_bytes(4, "little")
    failed = live(bytes(wav), "--from-file", "-")
    assert failed.returncode == 1 and "the WAV stream holds no samples" in failed.stderr.decode(), failed.stderr
