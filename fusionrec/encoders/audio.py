"""Audio: log-mel / MFCC summary statistics from audio files, and precomputed audio arrays.

:class:`LogMelAudioEncoder` reads a file with soundfile (libsndfile: wav, flac, ogg,
mp3), mixes to mono, resamples (``scipy.signal.resample_poly``), keeps the first
``max_seconds`` and summarises the clip as

    [mean, std] of the log-mel bands  +  [mean, std] of the MFCCs  +  [mean, std] of their deltas

i.e. ``2 * n_mels + 4 * n_mfcc`` numbers (208 with the defaults), a fixed-size
vector for clips of any length. The spectrogram path is soundfile + scipy with
librosa's conventions (centred Hann STFT, Slaney mel filters, orthonormal DCT-II,
Savitzky-Golay deltas); librosa itself is not imported because its numba stack
costs seconds of start-up in every decoding worker. A zero-length file, a file with no samples, or
undecodable data is reported per item (the item keeps its other modalities).

Precomputed audio embeddings (e.g. VGGish / Whisper arrays shipped with a dataset)
load as a modality with :func:`fusionrec.encoders.precomputed.load_feature_array`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.roles import AUDIO_COLUMN
from fusionrec.encoders.base import (
    Encoder,
    ItemInput,
    ItemProblem,
    content_hash,
    media_column,
    resolve_path,
)
from fusionrec.errors import UserError


def read_audio(path: str | Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """Decode to mono float32 at ``sample_rate``; raises :class:`ItemProblem` on bad input."""
    import soundfile as sf

    path = str(path)
    try:
        if Path(path).stat().st_size == 0:
            raise ItemProblem("audio file is empty (0 bytes)", path)
    except FileNotFoundError as err:
        raise ItemProblem("audio file not found", path) from err
    try:
        info = sf.info(path)
        frames = -1 if max_seconds is None else int(max_seconds * info.samplerate)
        data, sr = sf.read(path, frames=frames, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError for bad data
        raise ItemProblem(f"not a readable audio file: {err}", path) from err
    data = data.mean(axis=1)
    if data.size == 0:
        raise ItemProblem("audio has no samples (zero length)", path)
    if not np.isfinite(data).all():
        raise ItemProblem("audio contains NaN/inf samples", path)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), int(sample_rate))
        data = resample_poly(data, sample_rate // g, int(sr) // g)
    return np.ascontiguousarray(data, dtype=np.float32)


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(freq >= min_log_hz, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep,
                    freq / f_sp)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``[n_mels, 1 + n_fft // 2]`` triangular filters, Slaney area-normalised (as librosa.filters.mel)."""
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


class LogMelAudioEncoder(Encoder):
    """Fixed-size log-mel + MFCC statistics of an item's audio file (no neural network)."""

    name = "logmel"
    kind = "audio"
    parallel_load = True  # decoding + spectrograms are the whole cost: run them in workers

    def __init__(
        self,
        audio_column: str | None = None,
        sample_rate: int = 22050,
        n_mels: int = 64,
        n_mfcc: int = 20,
        n_fft: int = 2048,
        hop_length: int = 512,
        max_seconds: float | None = 30.0,
        modality: str | None = None,
    ) -> None:
        super().__init__(modality)
        if n_mfcc > n_mels:
            raise UserError(f"n_mfcc={n_mfcc} cannot exceed n_mels={n_mels}", fix="lower n_mfcc or raise n_mels")
        self.audio_column = audio_column
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.n_mfcc = int(n_mfcc)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.max_seconds = max_seconds
        self._filters: np.ndarray | None = None

    def _id_parts(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_mfcc": self.n_mfcc, "n_fft": self.n_fft,
            "hop_length": self.hop_length, "max_seconds": self.max_seconds, "impl": "scipy-slaney-1",
        }

    @property
    def dim(self) -> int:
        return 2 * self.n_mels + 4 * self.n_mfcc

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        col = media_column(items, AUDIO_COLUMN, self.audio_column, "audio_column", self.modality)
        out: list[ItemInput] = []
        for value in items[col].tolist():
            path = resolve_path(value, root)
            if path is None:
                out.append(ItemInput(None, problem="no usable audio: no path, or the file is missing or unreadable (data validate names which)"))
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                out.append(ItemInput(None, file=str(path), problem="audio file not found"))
                continue
            except OSError as err:
                out.append(ItemInput(None, file=str(path), problem=f"audio file unreadable: {err.strerror or err}"))
                continue
            if not data:
                out.append(ItemInput(None, file=str(path), problem="audio file is empty (0 bytes)"))
                continue
            out.append(ItemInput(content_hash(data), payload=str(path), file=str(path)))
        return out

    def features(self, signal: np.ndarray) -> np.ndarray:
        """Summary statistics of one mono signal at ``sample_rate``."""
        from scipy.fft import dct, rfft
        from scipy.signal import get_window, savgol_filter

        # Centred, zero-padded frames, like librosa.stft(center=True, pad_mode="constant").
        pad = self.n_fft // 2
        y = np.pad(signal.astype(np.float32), pad)
        if y.size < self.n_fft:
            y = np.pad(y, (0, self.n_fft - y.size))
        frames = np.lib.stride_tricks.sliding_window_view(y, self.n_fft)[:: self.hop_length]
        window = get_window("hann", self.n_fft, fftbins=True).astype(np.float32)
        power = np.abs(rfft(frames * window, axis=1)) ** 2  # [frames, 1 + n_fft // 2]
        if self._filters is None:
            self._filters = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels)
        mel = self._filters @ power.T  # [n_mels, frames]
        # power_to_db(ref=1, amin=1e-10); floor at -100 dB so silence stays finite.
        log_mel = np.maximum(10.0 * np.log10(np.maximum(mel, 1e-10)), -100.0)
        mfcc = dct(log_mel, type=2, axis=0, norm="ortho")[: self.n_mfcc]
        n_frames = mfcc.shape[1]
        width = min(9, n_frames if n_frames % 2 == 1 else n_frames - 1)
        delta = (savgol_filter(mfcc, width, polyorder=1, deriv=1, axis=1, mode="interp")
                 if width >= 3 else np.zeros_like(mfcc))
        parts = [log_mel.mean(1), log_mel.std(1), mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]
        return np.concatenate(parts).astype(np.float32)

    def load(self, payload: str) -> np.ndarray:
        signal = read_audio(payload, self.sample_rate, self.max_seconds)
        return self.features(signal)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(list(batch)).astype(np.float32, copy=False)
