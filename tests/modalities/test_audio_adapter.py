from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import modalities


def test_known_pcm16_bytes():
    audio = modalities.get("audio")
    x = np.array([0.5, -0.5, 1.0, -1.0, 0.0, 2.0, -3.0], np.float32)
    data = audio.encode((x, 16000))
    assert data[:2] == b"\x00\x40"  # 0.5 -> 16384, little-endian
    assert data == bytes.fromhex("004000c0ff7f00800000ff7f0080")


def test_pcm16_rounding_is_half_to_even():
    audio = modalities.get("audio")
    x = np.array([0.5 / 32768, 1.5 / 32768, -0.5 / 32768], np.float32)
    assert np.frombuffer(audio.encode((x, 16000)), "<i2").tolist() == [0, 2, 0]


def test_known_pcm8_and_mulaw_bytes():
    x = np.array([0.0, 0.5, -1.0, 1.0], np.float32)
    assert modalities.get("audio", encoding="pcm8").encode((x, 16000)) == bytes([128, 192, 0, 255])
    mu = modalities.get("audio", encoding="mulaw8").encode((x, 16000))
    assert mu[0] == 128 and mu[2] == 0 and mu[3] == 255


def test_pcm16_bit_exact_at_target_rate(tmp_path):
    rng = np.random.default_rng(0)
    ints = rng.integers(-32768, 32768, 4000).astype(np.int16)
    path = tmp_path / "a.wav"
    sf.write(path, ints, 16000, subtype="PCM_16")
    audio = modalities.get("audio")
    data = audio.encode_file(path)
    assert data == ints.astype("<i2").tobytes()
    audio.save(data, tmp_path / "b.wav")
    assert audio.encode_file(tmp_path / "b.wav") == data
    waveform, rate = audio.decode(data)
    assert rate == 16000 and waveform.dtype == np.float32
    assert audio.encode((waveform, rate)) == data


def test_pcm8_round_trip(tmp_path):
    audio = modalities.get("audio", encoding="pcm8")
    data = bytes(range(256))
    audio.save(data, tmp_path / "u8.wav")
    assert sf.info(tmp_path / "u8.wav").subtype == "PCM_U8"
    assert audio.encode_file(tmp_path / "u8.wav") == data


def test_mulaw8_within_quantization_step():
    audio = modalities.get("audio", encoding="mulaw8")
    x = np.linspace(-1, 1, 2001, dtype=np.float32)
    data = audio.encode((x, 16000))
    assert len(data) == len(x)
    back, _ = audio.decode(data)
    levels, _ = audio.decode(bytes(range(256)))
    # each value decodes to a neighbouring mu-law level: error below the local step size
    step = np.diff(levels)
    idx = np.frombuffer(data, np.uint8).astype(int)
    local = np.maximum(step[np.clip(idx - 1, 0, 254)], step[np.clip(idx, 0, 254)])
    assert (np.abs(back - x) <= local + 1e-6).all()
    assert audio.encode((back, 16000)) == data  # re-encoding the decoded levels is stable


def test_stereo_mixdown(tmp_path):
    left = np.full(100, 0.5, np.float32)
    right = np.full(100, -0.25, np.float32)
    sf.write(tmp_path / "s.flac", np.stack([left, right], 1), 16000, subtype="PCM_16")
    data = modalities.get("audio").encode_file(tmp_path / "s.flac")
    assert np.frombuffer(data, "<i2").tolist() == [4096] * 100  # mean 0.125 -> 4096


def test_resample_keeps_440hz(tmp_path):
    t = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", tone, 48000, subtype="FLOAT")
    audio = modalities.get("audio")
    samples, rate = audio.decode(audio.encode_file(tmp_path / "tone.wav"))
    assert rate == 16000 and len(samples) == 16000
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak = np.fft.rfftfreq(len(samples), 1 / 16000)[spectrum.argmax()]
    assert abs(peak - 440) <= 1.0
    assert abs(np.abs(samples[1000:-1000]).max() - 0.5) < 0.01


def test_ogg_reads(tmp_path):
    t = np.arange(8000) / 8000
    sf.write(tmp_path / "a.ogg", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 8000)
    data = modalities.get("audio").encode_file(tmp_path / "a.ogg")
    assert abs(len(data) - 32000) <= 4


def test_nan_inf_is_an_error():
    audio = modalities.get("audio")
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN or Inf"):
            audio.encode((np.array([0.0, bad], np.float32), 16000))


def test_corrupt_flac_raises(tmp_path):
    sf.write(tmp_path / "c.flac", np.zeros(4000, np.float32), 16000)
    raw = bytearray((tmp_path / "c.flac").read_bytes())
    raw[8:] = b"\x13" * (len(raw) - 8)
    (tmp_path / "c.flac").write_bytes(bytes(raw))
    with pytest.raises(Exception):  # noqa: B017 - soundfile raises its own LibsndfileError
        modalities.get("audio").encode_file(tmp_path / "c.flac")


def test_clips_and_tail():
    data = bytes(range(10)) * 3  # 30 bytes
    keep = modalities.get("audio", seq_len=8)
    assert keep.clips(data) == [data[0:8], data[8:16], data[16:24], data[24:30]]
    drop = modalities.get("audio", seq_len=8, tail="drop")
    assert drop.clips(data) == [data[0:8], data[8:16], data[16:24]]
    assert keep.seconds(524_288) == 16.384


def test_a_files_clips_are_one_unit(tmp_path):
    audio = modalities.get("audio", sample_rate=8000, seq_len=8)
    sf.write(tmp_path / "a.wav", np.zeros(10, np.int16), 8000, subtype="PCM_16")
    [unit] = audio.units(tmp_path / "a.wav")  # no clip of a recording leaks into another split
    assert [len(r.data) for r in unit.records] == [8, 8, 4]
    assert [r.meta for r in unit.records] == [
        {"clip": 0, "offset": 0},
        {"clip": 1, "offset": 8},
        {"clip": 2, "offset": 16},
    ]


def test_sampling_keeps_whole_samples_and_fits_the_model(tmp_path):
    audio = modalities.get("audio", sample_rate=8000)
    sf.write(tmp_path / "p.wav", np.full(50, 0.25, np.float32), 8000, subtype="PCM_16")
    prompt = audio.read_prompt(tmp_path / "p.wav", 0.33)
    assert len(prompt.data) == 32 and len(prompt.whole) == 100  # 33 bytes rounded to samples
    prompt, new = audio.plan_sample(prompt, None, max_seq_len=64)
    assert (len(prompt.data), new) == (32, 32)
    long = audio.read_prompt(tmp_path / "p.wav", 1.0)
    cut, new = audio.plan_sample(long, None, max_seq_len=64)
    assert cut.data == long.data[-62:] and "cut to its last 62 bytes" in cut.notes[0]
    assert new == 2  # one sample still fits
    with pytest.raises(ValueError, match="must fit max_seq_len 64"):
        audio.plan_sample(long, 7, max_seq_len=64)  # 62 + 6 new bytes (7 in whole samples)


def test_units_flac_codec_only_for_pcm16():
    assert modalities.get("audio").bytes_per_unit == 2
    assert modalities.get("audio", encoding="pcm8").bytes_per_unit == 1
    assert set(modalities.get("audio").codecs()[0]) == {"flac"}
    assert modalities.get("audio", encoding="mulaw8").codecs()[0] == {}
