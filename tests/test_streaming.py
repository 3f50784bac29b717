from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from conftest import random_chunks
from speechrnn.audio import load_audio
from speechrnn.decoding import BeamSearch, BeamSearchConfig, greedy_decode
from speechrnn.features import FrontendConfig
from speechrnn.model import ModelConfig, SpeechModel
from speechrnn.transcribe import recognize
from speechrnn.streaming import (
    EndpointConfig,
    StreamingRecognizer,
    extract_chunk,
    flush,
    forward_chunk,
    init_state,
    restarted,
    stack_states,
    unstack_state,
)

TINY = dict(n_hidden=48, n_proj=48, n_layers=2, dropout=0.0, bidirectional=False)


# Start levels above the test tone's frames (about 31 dB), so they decide its first second,
# and with a lead bound that lowers the start below 40 dB.
@pytest.fixture(
    scope="module",
    params=[
        (0, 0.0, None, None, 0, 0), (2, 0.0, None, None, 0, 0), (2, 10.0, None, None, 0, 0), (2, 10.0, 40.0, None, 0, 0), (2, 10.0, 40.0, 5.0, 0, 0),
        (2, 10.0, 40.0, 5.0, 4, 0), (0, 10.0, 40.0, 5.0, 0, 3), (2, 10.0, 40.0, 5.0, 4, 3), (2, 10.0, 40.0, 5.0, 4, 3, 50.0),
        (2, 10.0, 40.0, 5.0, 4, 3, 50.0, 15.0),
    ],
    ids=[
        "no-lookahead", "lookahead-2", "lookahead-2-level-tracking", "lookahead-2-level-tracking-start-level", "lookahead-2-level-tracking-start-level-lead",
        "lookahead-2-level-tracking-start-level-lead-causal-conv", "input-lookahead-3-level-tracking-start-level-lead",
        "input-lookahead-3-lookahead-2-level-tracking-start-level-lead-causal-conv",
        "input-lookahead-3-lookahead-2-level-tracking-start-level-lead-causal-conv-running-cmn",
        "input-lookahead-3-lookahead-2-level-tracking-start-level-lead-causal-conv-running-cmn-gate",
    ],
)
def model(request):
    torch.manual_seed(0)
    lookahead, level_decay_db, level_start_db, level_start_lead_db, conv_channels, input_lookahead, *running_cmn = request.param
    frontend = FrontendConfig(
        level_decay_db=level_decay_db,
        level_start_db=level_start_db,
        level_start_lead_db=level_start_lead_db,
        running_cmn_frames=running_cmn[0] if running_cmn else 0.0,
        running_cmn_gate_db=running_cmn[1] if len(running_cmn) > 1 else 0.0,
    )
    model = SpeechModel(ModelConfig(lookahead=lookahead, frontend=frontend, conv_channels=conv_channels, input_lookahead=input_lookahead, **TINY)).eval()
    n = model.config.frontend.n_features
    model.frontend.set_cmvn(torch.randn(n) * 3 - 5, torch.rand(n) * 3 + 1)
    if frontend.running_cmn_frames:
        model.frontend.cmn_prior.copy_(torch.randn(frontend.n_mels) * 3 - 5)
    with torch.no_grad():  # a look-ahead that is not the identity, so the test sees it
        if model.lookahead is not None:
            model.lookahead.weight.normal_()
    return model


def offline(model, wave: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        log_probs, lens = model(*model.features(wave[None], torch.tensor([len(wave)])))
    return log_probs[0, : lens[0]]


def stream(model, wave: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    state, feats_all, out = init_state(model), [], []
    position = 0
    for size in sizes:
        feats, state = extract_chunk(model, wave[None, position : position + size], state)
        position += size
        feats_all.append(feats[0])
        log_probs, state = forward_chunk(model, feats, state)
        out.append(log_probs[0])
    log_probs, state = flush(model, state)
    out.append(log_probs[0])
    return torch.cat(feats_all), torch.cat(out)


def test_any_chunking_gives_the_offline_frames_and_log_probs(model, tone):
    wave = torch.from_numpy(np.concatenate([tone, tone[:7777] * 0.5]))
    whole_feats, _ = model.features(wave[None], torch.tensor([len(wave)]))
    reference = offline(model, wave)
    for seed in range(4):
        feats, log_probs = stream(model, wave, random_chunks(len(wave), random.Random(seed)))
        torch.testing.assert_close(feats, whole_feats[0], atol=1e-4, rtol=1e-4)
        assert log_probs.shape == reference.shape
        torch.testing.assert_close(log_probs, reference, atol=1e-4, rtol=1e-4)


def test_a_gated_running_mean_streams_as_it_reads_whole(tone):
    """With faint noise before a tone, which stays out of a gated running mean, a stream fed in
    any chunks reads as the whole signal does, and carries the count of frames in the mean and
    the loudest level."""
    torch.manual_seed(0)
    config = FrontendConfig(level_decay_db=10.0, level_start_db=40.0, level_start_lead_db=30.0, running_cmn_frames=50.0, running_cmn_gate_db=15.0)
    model = SpeechModel(ModelConfig(frontend=config, **TINY)).eval()
    model.frontend.cmn_prior.copy_(torch.randn(config.n_mels) * 3 - 5)
    quiet = 1e-3 * np.random.default_rng(1).standard_normal(48000).astype(np.float32)  # 3 s: longer than level tracking takes to fall 30 dB
    wave = torch.from_numpy(np.concatenate([quiet, tone, quiet, tone]))
    for sizes in ([len(wave)], [160] * 300 + [len(wave)], random_chunks(len(wave), random.Random(3))):
        _, log_probs = stream(model, wave, sizes)
        torch.testing.assert_close(log_probs, offline(model, wave), atol=1e-4, rtol=0)
    state = init_state(model)
    for start in range(0, len(wave), 1600):
        _, state = extract_chunk(model, wave[None, start : start + 1600], state)
    entered = float(state.cmn.count[0])
    assert 2 * 95 <= entered <= 2 * 102  # frames with tone in them (up to 102 a tone), not the quiet's


@pytest.mark.parametrize("cut", [6400, 6560])  # 38 and 39 frames: two held back for stacking (of 3), or none
def test_a_restarted_stream_reads_on_as_a_stream_started_there(model, tone, cut):
    """After an endpoint the next utterance's features (the frame held back for stacking, then
    the new ones) are a fresh stream's from that frame's first sample: level tracking and the
    running channel mean start again there."""
    wave = torch.from_numpy(tone)
    feats, state = extract_chunk(model, wave[None, :cut], init_state(model))
    _, state = forward_chunk(model, feats, state)
    _, state = flush(model, state)
    state = restarted(model, state, None, 0.0)
    begin = (state.features_done - state.frames.shape[1]) * model.config.frontend.hop_length
    rest, _ = extract_chunk(model, wave[None, cut:], state)
    fresh, _ = extract_chunk(model, wave[None, begin:], init_state(model))
    torch.testing.assert_close(torch.cat([state.frames, rest], 1), fresh, atol=1e-4, rtol=1e-4)


def test_lookahead_sees_exactly_its_future_frames(model):
    """Changing the input after output frame t changes frame t only through the look-ahead."""
    torch.manual_seed(1)
    feats = torch.randn(1, 60, model.config.frontend.n_features)
    base, _ = model(feats, torch.tensor([60]))
    changed = feats.clone()
    changed[0, 30:] += 1.0  # output frames from 10 on (frame_stack 3)
    moved, _ = model(changed, torch.tensor([60]))
    differs = (base - moved).abs().amax(-1)[0] > 1e-6
    first = int(differs.nonzero()[0])
    assert first == 10 - model.config.latency_frames


def test_stacked_streams_advance_like_single_streams(model, tone):
    waves = [torch.from_numpy(tone), torch.from_numpy(tone[::-1].copy()), torch.from_numpy(tone * 0.1)]
    singles = [stream(model, w, [1600] * 10)[1] for w in waves]
    states = [init_state(model) for _ in waves]
    outputs = [[] for _ in waves]
    for start in range(0, 16000, 1600):
        chunk_feats = []
        for i, w in enumerate(waves):
            feats, states[i] = extract_chunk(model, w[None, start : start + 1600], states[i])
            chunk_feats.append(feats)
        log_probs, batch_state = forward_chunk(model, torch.cat(chunk_feats), stack_states(states))
        states = unstack_state(batch_state)
        for i in range(len(waves)):
            outputs[i].append(log_probs[i])
            # Each stream's tentative frames are what it would emit if it ended here.
            torch.testing.assert_close(states[i].tentative, flush(model, states[i])[0], atol=1e-5, rtol=1e-5)
    for i, state in enumerate(states):
        outputs[i].append(flush(model, state)[0][0])
        torch.testing.assert_close(torch.cat(outputs[i]), singles[i], atol=1e-5, rtol=1e-5)


def test_skipping_tentative_frames_leaves_the_stream_unchanged(model, tone):
    wave = torch.from_numpy(tone)
    read, skipped = init_state(model), init_state(model)
    for start in range(0, len(wave), 1100):
        chunk = wave[None, start : start + 1100]
        feats, read = extract_chunk(model, chunk, read)
        out_read, read = forward_chunk(model, feats, read)
        feats, skipped = extract_chunk(model, chunk, skipped)
        out_skipped, skipped = forward_chunk(model, feats, skipped, tentative=False)
        assert skipped.tentative is None and read.tentative is not None
        assert torch.equal(out_skipped, out_read)
    assert torch.equal(flush(model, skipped)[0], flush(model, read)[0])


def test_stack_rejects_streams_of_different_ages(model, tone):
    young = init_state(model)
    _, old = extract_chunk(model, torch.from_numpy(tone[None, :500]), init_state(model))
    with pytest.raises(ValueError, match="samples caches differ"):
        stack_states([young, old])


def test_bidirectional_model_refuses_to_stream():
    with pytest.raises(ValueError, match="bidirectional"):
        init_state(SpeechModel(ModelConfig(n_hidden=8, n_proj=8, n_layers=1)))


def test_recognizer_final_equals_offline_text_for_any_chunking(model, speech_dir):
    folder, phrases = speech_dir
    for name in phrases:
        samples = load_audio(folder / f"{name}.wav")
        wave = torch.from_numpy(samples)
        expected = greedy_decode(offline(model, wave)[None], torch.tensor([len(offline(model, wave))]), model.tokenizer, model.config.frame_shift)[0]
        assert expected.text  # random weights still spell something, so the comparison below has words to compare
        recognizer = StreamingRecognizer(model, endpoint=None)
        position = 0
        for size in random_chunks(len(samples), random.Random(name)):
            events = recognizer.accept_waveform(samples[position : position + size])
            position += size
            assert [e.type for e in events] == ["partial"]
        final = recognizer.finalize()
        assert final.type == "final" and final.text == expected.text and final.words == expected.words


@pytest.mark.parametrize("remove_hum", [None, 60.0])
def test_a_stream_without_its_dc_offset_or_hum_reads_as_the_whole_input_without_them(model, speech_dir, remove_hum):
    folder, _ = speech_dir
    samples = load_audio(folder / "enter.wav") + np.float32(0.02)
    samples += (0.01 * np.sin(2 * np.pi * 60 * np.arange(samples.size) / 16000)).astype(np.float32)
    expected = recognize(model, [torch.from_numpy(samples)], remove_dc=True, remove_hum=remove_hum)[0]
    recognizer = StreamingRecognizer(model, endpoint=None, remove_dc=True, remove_hum=remove_hum)
    position = 0
    for size in random_chunks(len(samples), random.Random(1)):
        recognizer.accept_waveform(samples[position : position + size])
        position += size
    # What came in, before the filters: the first second's mean; the hum is told where it is
    # left in, the offset is not (it is taken out).
    assert recognizer.dc_offset == pytest.approx(float(samples[:16000].mean()), abs=1e-6)
    assert [w.split(" at ")[0] for w in recognizer.input_warnings] == ([] if remove_hum else ["mains hum"])
    final = recognizer.finalize()
    assert final.text == expected.text and final.words == expected.words
    assert recognizer.dc_offset is None  # (a new stream, no second of it yet)


def test_a_stream_warns_of_a_dc_offset_from_the_start_and_of_hum_once_it_starts(model):
    rng = np.random.default_rng(0)
    quiet = (0.003 * rng.standard_normal(6 * 16000)).astype(np.float32)
    hummed = quiet + (0.01 * np.sin(2 * np.pi * 50 * np.arange(quiet.size) / 16000) * (np.arange(quiet.size) >= 3 * 16000)).astype(np.float32)
    recognizer = StreamingRecognizer(model, endpoint=None, lm="none")
    told = []
    for start in range(0, hummed.size, 1600):
        recognizer.accept_waveform(hummed[start : start + 1600] + np.float32(0.02))
        told.append(len(recognizer.input_warnings))
    # The offset once its first second is in; the hum with the first whole second of it (the
    # fourth), and each once however long they last.
    assert told.index(1) == 9 and told.index(2) == 39 and told[-1] == 2
    assert recognizer.input_warnings[0].startswith("a DC offset of +0.02")
    assert recognizer.input_warnings[1].startswith("mains hum at 50 Hz")
    # What the options take out is not told; hum at another frequency than the one taken out is.
    for remove_dc, remove_hum, expected in ((True, None, 1), (False, 50.0, 1), (True, 50.0, 0), (True, 60.0, 1)):
        recognizer = StreamingRecognizer(model, endpoint=None, lm="none", remove_dc=remove_dc, remove_hum=remove_hum)
        recognizer.accept_waveform(hummed + np.float32(0.02))
        assert len(recognizer.input_warnings) == expected


def test_a_long_recording_is_read_as_a_stream_with_the_log_probs_of_a_whole_pass(model, speech_dir, monkeypatch):
    import importlib

    whole_file = importlib.import_module("speechrnn.transcribe")
    folder, _ = speech_dir
    waves = [torch.from_numpy(load_audio(folder / f"{name}.wav")) for name in ("enter", "erase")]
    whole = whole_file.emissions_in_order(model, waves)
    monkeypatch.setattr(whole_file, "STREAMED_SECONDS", 0.5)  # (the enter and erase phrases are longer)
    monkeypatch.setattr(whole_file, "STREAMED_CHUNK", 0.37)
    streamed = whole_file.emissions_in_order(model, waves)
    for a, b in zip(whole, streamed):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_tentative_partial_is_what_the_stream_would_finalize_to_now(model, speech_dir):
    folder, phrases = speech_dir
    samples = load_audio(folder / "spell.wav")
    tentative, plain = StreamingRecognizer(model, endpoint=None), StreamingRecognizer(model, endpoint=None, tentative=False)
    differ = 0
    for end in range(1600, len(samples), 1600):
        partial = tentative.accept_waveform(samples[end - 1600 : end])[-1]
        held_back = plain.accept_waveform(samples[end - 1600 : end])[-1]
        ended_here = StreamingRecognizer(model, endpoint=None)
        ended_here.accept_waveform(samples[:end])
        final = ended_here.finalize()
        assert (partial.text, partial.words, partial.end) == (final.text, final.words, final.end)
        differ += held_back.text != partial.text
    # Without look-ahead nothing is held back; with it the tentative frames change partials.
    assert (differ > 0) == (model.config.latency_frames > 0)
    assert tentative.finalize().text == plain.finalize().text


def test_bad_chunks_do_not_break_the_stream(model, tone):
    recognizer = StreamingRecognizer(model, endpoint=None)
    assert recognizer.accept_waveform(np.zeros(0, dtype=np.float32))[-1].text == ""
    noisy = tone.copy()
    noisy[100:200] = np.nan
    noisy[300] = np.inf
    recognizer.accept_waveform(noisy)
    assert recognizer.invalid_samples == 101
    stereo_48k = np.stack([tone, tone], axis=1).repeat(3, axis=0)
    with pytest.raises(ValueError, match="sample rate changed"):
        recognizer.accept_waveform(stereo_48k, 48000)
    recognizer.reset()
    recognizer.accept_waveform(np.clip(stereo_48k * 10, -1, 1), 48000)  # clipped 48 kHz stereo
    final = recognizer.finalize()
    assert final.end == pytest.approx(1.0, abs=0.05)


def scripted(recognizer, chunks: list[str]):
    """Make ``recognizer`` see scripted model outputs: one string per chunk, a character per
    output frame ('_' blank), instead of running the network."""
    tok, script = recognizer.model.tokenizer, iter(chunks)

    def decode(samples, tentative=True):
        path = next(script)
        log_probs = torch.full((len(path), len(tok)), -20.0)
        for t, symbol in enumerate(path):
            log_probs[t, 0 if symbol == "_" else tok.index[symbol]] = 0.0
        recognizer.state = dataclasses.replace(recognizer.state, frames_done=recognizer.state.frames_done + len(path))
        recognizer.decoder.step(log_probs)

    recognizer._decode = decode


def test_endpointing_splits_utterances_with_absolute_times(model):
    endpoint = EndpointConfig(trailing_silence=0.3, no_speech=0.6, max_utterance=1.2)
    recognizer = StreamingRecognizer(model, endpoint=endpoint)
    silence_9 = "_" * 9  # 0.27 s at 30 ms frames
    scripted(recognizer, ["_go_", "_" * 5, "_" * 6, "__ye", "s" + silence_9, "_", "_" * 21, "_" * 10, "a_b_" * 10, "c", ""])  # the last for finalize
    events = [recognizer.accept_waveform(np.zeros(1)) for _ in range(10)]
    types = [[e.type for e in chunk] for chunk in events]
    # 'go', then 11 blank frames (0.33 s >= 0.3 s): final in the third chunk.
    assert types[:3] == [["partial"], ["partial"], ["final", "partial"]]
    go = events[2][0]
    assert go.text == "go" and go.start == 0.0 and go.end == pytest.approx(15 * 0.03)
    assert go.words[0].start == pytest.approx(0.03) and go.words[0].end == pytest.approx(0.09)
    # 'yes' starts a new utterance at frame 15; its times are absolute.
    assert events[3][-1].text == "ye" and events[3][-1].start == pytest.approx(15 * 0.03)
    assert events[4][-1].text == "yes" and types[4] == ["partial"]
    assert types[5] == ["final", "partial"] and events[5][0].text == "yes"
    assert events[5][0].words[0].start == pytest.approx((15 + 2) * 0.03)
    # 21 blank frames (0.63 s >= no_speech): the empty utterance restarts with no final.
    assert types[6] == ["partial"] and events[6][-1].start == pytest.approx((15 + 15 + 21) * 0.03)
    # A long utterance is cut at max_utterance (1.2 s = 40 frames): 10 + 40 frames here.
    assert types[8] == ["final", "partial"] and events[8][0].end - events[8][0].start == pytest.approx(1.5)
    assert recognizer.finalize().text == "c"


def test_endpointing_reads_a_long_chunk_every_tenth_of_a_second(model):
    # One chunk of 0.3 s: 'go', then 12 blank frames (0.36 s >= 0.3 s), then 'ye'. Read in
    # 0.1 s steps, 'go' ends within the chunk, as it would in three 0.1 s chunks.
    recognizer = StreamingRecognizer(model, endpoint=EndpointConfig(trailing_silence=0.3, no_speech=0.6, max_utterance=20.0))
    scripted(recognizer, ["_go_", "_" * 12, "_ye", ""])
    events = recognizer.accept_waveform(np.zeros(3 * 1600, np.float32))
    assert [(e.type, e.text) for e in events] == [("final", "go"), ("partial", "ye")]
    assert events[1].start == pytest.approx(16 * 0.03)
    assert recognizer.finalize().text == "ye"


def test_an_interrupt_while_an_utterance_closes_keeps_its_final(model, monkeypatch):
    # Ctrl-C lands after endpointing finished the utterance's search, before the next began:
    # finalize() returns that utterance, not "the decoder has finished".
    import speechrnn.streaming as streaming_module

    search = BeamSearch(BeamSearchConfig(beam_size=4), model.tokenizer)
    recognizer = StreamingRecognizer(model, endpoint=EndpointConfig(trailing_silence=0.3, no_speech=0.6, max_utterance=20.0), lm=search)
    scripted(recognizer, ["_go_", "_" * 12, "_"])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(streaming_module, "restarted", interrupted)
    recognizer.accept_waveform(np.zeros(1, np.float32))
    with pytest.raises(KeyboardInterrupt):
        recognizer.accept_waveform(np.zeros(1, np.float32))
    monkeypatch.undo()
    final = recognizer.finalize()
    assert (final.type, final.text) == ("final", "go")
    assert recognizer.accept_waveform(np.zeros(1600, np.float32))[-1].start == 0.0  # a new stream after it


def test_channel_first_samples_and_a_bad_rate_are_refused_without_harm(model, tone):
    recognizer = StreamingRecognizer(model, endpoint=None)
    with pytest.raises(ValueError, match="channel-first samples need transposing"):
        recognizer.accept_waveform(tone[None])  # (1, N), as torchaudio.load returns
    with pytest.raises(ValueError, match="sample rate must be a positive number of Hz, got 0"):
        recognizer.accept_waveform(tone, 0)
    recognizer.accept_waveform(tone, 16000)  # the stream is as it was: no rate was fixed by the refusals
    assert recognizer.finalize().end == pytest.approx(len(tone) / 16000, abs=0.05)


def test_no_endpointing_keeps_one_utterance(model):
    recognizer = StreamingRecognizer(model, endpoint=None)
    scripted(recognizer, ["_go_" + "_" * 200, "yes", ""])
    recognizer.accept_waveform(np.zeros(1))
    assert [e.type for e in recognizer.accept_waveform(np.zeros(1))] == ["partial"]
    assert recognizer.finalize().text == "goyes"
