"""Audio statistics from files, bad audio reported per item, precomputed audio arrays."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from fusionrec.encoders import encode_dataset
from fusionrec.encoders.audio import LogMelAudioEncoder
from fusionrec.encoders.precomputed import load_feature_array
from fusionrec.errors import UserError

from .conftest import CountingTextEncoder, make_dataset


def tone(freq: float, seconds: float, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_audio_files_to_stats_and_bad_files_reported(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    sf.write(root / "low.wav", tone(220, 1.5), 22050)
    sf.write(root / "low_again.flac", tone(220, 1.2, 16000), 16000)  # other format + rate
    sf.write(root / "high.wav", tone(3520, 1.5), 22050)
    sf.write(root / "stereo.wav", np.stack([tone(440, 1.0), tone(440, 1.0)], 1), 22050)
    sf.write(root / "zero.wav", np.zeros(0, np.float32), 22050)  # a header and no samples
    (root / "empty.wav").write_bytes(b"")
    (root / "garbage.wav").write_bytes(b"RIFF....WAVEfmt nonsense" * 4)
    items = pd.DataFrame({
        "item_id": list("abcdefgh"), "title": list("abcdefgh"), "description": ["x"] * 8,
        "audio_path": ["low.wav", "low_again.flac", "high.wav", "stereo.wav", "zero.wav", "empty.wav",
                       "garbage.wav", "missing.wav"],
    })
    ds = make_dataset(items, root=root)
    enc = LogMelAudioEncoder(n_mels=32, n_mfcc=13)
    rep = encode_dataset(ds, [enc, CountingTextEncoder()], store_dir=tmp_path / "cache", batch_size=2,
                         num_workers=0, progress=False)
    audio = ds.modalities["audio"]
    assert audio.dim == enc.dim == 2 * 32 + 4 * 13
    assert audio.mask.tolist() == [True, True, True, True, False, False, False, False]
    assert ds.modalities["text"].mask.all()
    f = audio.features
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    # The two 220 Hz clips (different format, rate, length) are closer than 220 Hz vs 3520 Hz.
    mel_mean = slice(0, 32)
    assert cos(f[0, mel_mean] - f[:4, mel_mean].mean(0), f[1, mel_mean] - f[:4, mel_mean].mean(0)) > \
        cos(f[0, mel_mean] - f[:4, mel_mean].mean(0), f[2, mel_mean] - f[:4, mel_mean].mean(0))
    assert np.argmax(f[0, mel_mean]) < np.argmax(f[2, mel_mean])  # energy sits in a lower band
    reasons = {i.item_id: i.reason for i in rep.modalities["audio"].issues}
    assert reasons["e"] == "audio has no samples (zero length)"
    assert reasons["f"] == "audio file is empty (0 bytes)"
    assert reasons["g"].startswith("not a readable audio file")
    assert reasons["h"] == "audio file not found"


def test_statistics_match_librosa_conventions():
    import librosa

    rng = np.random.default_rng(0)
    y = (tone(330, 1.4) + 0.05 * rng.standard_normal(int(1.4 * 22050))).astype(np.float32)
    enc = LogMelAudioEncoder(n_mels=32, n_mfcc=13)
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=32)
    log_mel = np.maximum(librosa.power_to_db(mel, ref=1.0, top_db=None), -100.0)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=13)
    delta = librosa.feature.delta(mfcc, width=9)
    ref = np.concatenate([log_mel.mean(1), log_mel.std(1), mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)])
    np.testing.assert_allclose(enc.features(y), ref, atol=1e-3)


def test_audio_column_is_required(tmp_path):
    ds = make_dataset(pd.DataFrame({"item_id": [1], "title": ["a"]}))
    with pytest.raises(UserError, match="no audio_path column"):
        encode_dataset(ds, [LogMelAudioEncoder()], progress=False)


def test_precomputed_array_with_row_ids_and_missing_rows(tmp_path):
    items = pd.DataFrame({"item_id": [10, 20, 30, 40]})
    ds = make_dataset(items)
    arr = np.array([[1, 2], [0, 0], [np.nan, 1], [5, 6]], dtype=np.float64)  # rows for ids 40, 30, 20, 99
    np.save(tmp_path / "vggish.npy", arr)
    mod = load_feature_array(tmp_path / "vggish.npy", ds, "audio_vggish", "audio", row_ids=[40, "30", 20, 99])
    assert mod.features.dtype == np.float32
    assert mod.mask.tolist() == [False, False, False, True]  # 10: no row, 30: zero row, 20: NaN row
    np.testing.assert_array_equal(mod.features[3], [1, 2])
    assert ds.modalities["audio_vggish"] is mod
    with pytest.raises(UserError, match="4 rows but dataset 'tiny' has 5 items"):
        load_feature_array(tmp_path / "vggish.npy", make_dataset(pd.DataFrame({"item_id": [1, 2, 3, 4, 5]})),
                           "x", "audio")


@pytest.mark.shared_data
def test_lastfm2k_vggish_and_whisper_load_as_modalities(shared_data):
    folder = shared_data / "lastfm2k"
    items = pd.read_csv(folder / "items.csv")
    ds = make_dataset(items)
    vgg = load_feature_array(folder / "vggish.npy", ds, "audio_vggish", "audio")
    whisper = load_feature_array(folder / "whisper.npy", ds, "audio_whisper", "audio")
    assert (vgg.n_items, vgg.dim, whisper.dim) == (1425, 128, 512)
    assert vgg.mask.mean() > 0.99 and whisper.mask.mean() > 0.99
    np.testing.assert_allclose(vgg.features[5], np.load(folder / "vggish.npy")[5].astype(np.float32))
