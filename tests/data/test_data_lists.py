"""Lists and audio reading: shard members decode exactly as soundfile decodes
the same bytes, for every layout; compressed shards; list type detection."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
import soundfile

from wespk.data.data_dir import read_raw_list
from wespk.data.lists import detect_data_type
from wespk.data.shards import index_shard, write_shard
from wespk.io.audio import (AudioError, AudioRef, parse_wav_header, probe_audio, read_audio_span,
                            read_audio_window)


def encode(samples, rate, fmt, subtype):
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def speech(corpus_dir):
    folder = os.path.join(corpus_dir, "vctk-p225")
    samples, rate = soundfile.read(os.path.join(folder, sorted(os.listdir(folder))[0]), dtype="float32")
    return samples[: 3 * rate], rate


LAYOUTS = [("WAV", "PCM_16", 1), ("WAV", "PCM_16", 2), ("WAV", "FLOAT", 1), ("WAV", "PCM_32", 1),
           ("WAV", "PCM_24", 1), ("FLAC", "PCM_16", 1), ("FLAC", "PCM_24", 2)]


@pytest.mark.parametrize("fmt, subtype, channels", LAYOUTS)
def test_shard_members_decode_like_soundfile(speech, tmp_path, fmt, subtype, channels):
    samples, rate = speech
    audio = samples if channels == 1 else np.stack([samples, samples[::-1] * 0.5], axis=1)
    payload = encode(audio, rate, fmt, subtype)
    shard = str(tmp_path / "one.tar")
    write_shard(shard, [("spk-utt", "spk", payload, fmt.lower())])
    (entry,) = index_shard(shard)
    assert entry.error is None and entry.num_samples == len(samples) and entry.sample_rate == rate
    expected = soundfile.read(io.BytesIO(payload), dtype="float32", always_2d=True)[0]
    expected = expected[:, 0] if channels == 1 else expected.mean(axis=1)
    whole, got_rate = read_audio_span(entry.audio)
    assert got_rate == rate and np.array_equal(whole, expected)
    part, _ = read_audio_span(entry.audio, 12345, 6789)
    assert np.array_equal(part, expected[12345:12345 + 6789])
    window, _ = read_audio_window(entry.audio, lambda r, n: (n - 100, 500))
    assert np.array_equal(window, expected[-100:])
    fast = parse_wav_header(payload[:4096], len(payload)) is not None
    assert fast == (fmt == "WAV" and subtype != "PCM_24")


def test_compressed_shards_are_read_from_memory(speech, tmp_path):
    samples, rate = speech
    payload = encode(samples, rate, "WAV", "PCM_16")
    path = str(tmp_path / "one.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("spk-a.spk", b"spk"), ("spk-a.wav", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (entry,) = index_shard(path)
    assert entry.audio.member_bytes is not None and entry.speaker == "spk"
    assert np.array_equal(read_audio_span(entry.audio, 100, 50)[0], read_audio_span(entry.audio)[0][100:150])


def test_segment_of_a_file(speech, tmp_path):
    samples, rate = speech
    path = str(tmp_path / "rec.wav")
    soundfile.write(path, samples, rate)
    ref = AudioRef(path=path, start=0.5, end=1.25)
    assert probe_audio(ref).num_samples == 12000
    assert np.array_equal(read_audio_span(ref, 100, 10)[0], soundfile.read(path, dtype="float32")[0][8100:8110])
    with pytest.raises(AudioError, match="no samples in the segment"):
        probe_audio(AudioRef(path=path, start=10.0, end=11.0))


def test_pipe_commands(speech, tmp_path):
    samples, rate = speech
    path = str(tmp_path / "rec.wav")
    soundfile.write(path, samples, rate)
    ref = AudioRef(path=f"cat {path} |")
    assert probe_audio(ref).num_samples == len(samples)
    assert np.array_equal(read_audio_span(ref, 10, 20)[0], soundfile.read(path, dtype="float32")[0][10:30])
    with pytest.raises(AudioError, match="failed"):
        probe_audio(AudioRef(path=f"cat {tmp_path}/none.wav |"))


def test_detect_data_type(tmp_path, data_dir, raw_list, shard_list):
    assert detect_data_type(raw_list) == "raw"
    assert detect_data_type(shard_list) == "shard"
    assert detect_data_type(data_dir) == "raw"
    feat_list = tmp_path / "feat.list"
    feat_list.write_text(json.dumps({"key": "a", "feat": "x.ark:1", "spk": "s"}) + "\n")
    assert detect_data_type(str(feat_list)) == "feat"
    (tmp_path / "feats.scp").write_text("a x.ark:1\n")
    assert detect_data_type(str(tmp_path / "feats.scp")) == "feat"


def test_raw_list_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.list"
    bad.write_text('{"key": "a", "wav": "a.wav", "spk": "s"}\n{"key": "b", "spk": "s"}\n')
    with pytest.raises(ValueError, match=r"bad.list:2: missing field\(s\) \['wav'\]"):
        read_raw_list(str(bad))
    bad.write_text('{"key": "a", "wav": "a.wav", "spk": "s", "start": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.list:1: start must be a number"):
        read_raw_list(str(bad))
