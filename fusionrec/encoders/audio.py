"""Audio: log-mel / MFCC summary statistics from audio files, and precomputed audio arrays.

:class:`LogMelAudioEncoder` reads a file (soundfile; librosa/audioread as a fallback
for formats libsndfile lacks), mixes to mono, resamples, keeps the first
``max_seconds`` and summarises the clip as

    [mean, std] of the log-mel bands  +  [mean, std] of the MFCCs  +  [mean, std] of their deltas

i.e. ``2 * n_mels + 4 * n_mfcc`` numbers (208 with the defaults), a fixed-size
vector for clips of any length. A zero-length file, a file with no samples, or
undecodable data is reported per item (the item keeps its other modalities).

Precomputed audio embeddings (e.g. VGGish / Whisper arrays shipped with a dataset)
load as a modality with :func:`fusionrec.encoders.precomputed.load_feature_array`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fusionrec.encoders.base import Encoder, ItemInput, ItemProblem, content_hash, resolve_path
from fusionrec.errors import UserError

AUDIO_PATH_COLUMNS = ("audio_path", "audio", "audio_file", "preview_path")


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
        frames = None if max_seconds is None else int(max_seconds * info.samplerate)
        data, sr = sf.read(path, frames=-1 if frames is None else frames, dtype="float32", always_2d=True)
        data = data.mean(axis=1)
    except ItemProblem:
        raise
    except Exception as sf_err:  # libsndfile cannot read it (e.g. an old mp3 build): try librosa
        try:
            import librosa

            data, sr = librosa.load(path, sr=None, mono=True, duration=max_seconds)
        except Exception as err:
            raise ItemProblem(f"not a readable audio file: {sf_err}", path) from err
    if data.size == 0:
        raise ItemProblem("audio has no samples (zero length)", path)
    if not np.isfinite(data).all():
        raise ItemProblem("audio contains NaN/inf samples", path)
    if sr != sample_rate:
        import librosa

        data = librosa.resample(data, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(data, dtype=np.float32)


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

    def _id_parts(self) -> dict[str, Any]:
        import librosa

        return {
            "sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_mfcc": self.n_mfcc, "n_fft": self.n_fft,
            "hop_length": self.hop_length, "max_seconds": self.max_seconds, "librosa": librosa.__version__,
        }

    @property
    def dim(self) -> int:
        return 2 * self.n_mels + 4 * self.n_mfcc

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        col = self.audio_column
        if col is None:
            col = next((c for c in AUDIO_PATH_COLUMNS if c in items.columns), None)
        if col is None or col not in items.columns:
            raise UserError(
                "the item table has no audio path column" if self.audio_column is None
                else f"audio column {self.audio_column!r} is not in the item table",
                where=f"item columns: {list(items.columns)}",
                fix=f"add one of {list(AUDIO_PATH_COLUMNS)} (paths relative to the dataset root) or set audio_column",
            )
        out: list[ItemInput] = []
        for value in items[col].tolist():
            path = resolve_path(value, root)
            if path is None:
                out.append(ItemInput(None, problem="no audio path in the item table"))
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
        import librosa

        mel = librosa.feature.melspectrogram(
            y=signal, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels
        )
        log_mel = librosa.power_to_db(mel, ref=1.0, top_db=None)
        # A silent clip would give -inf dB: floor at -100 dB so the statistics stay finite.
        log_mel = np.maximum(log_mel, -100.0)
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc)
        width = min(9, mfcc.shape[1] if mfcc.shape[1] % 2 == 1 else mfcc.shape[1] - 1)
        delta = librosa.feature.delta(mfcc, width=width) if width >= 3 else np.zeros_like(mfcc)
        parts = [log_mel.mean(1), log_mel.std(1), mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]
        return np.concatenate(parts).astype(np.float32)

    def load(self, payload: str) -> np.ndarray:
        signal = read_audio(payload, self.sample_rate, self.max_seconds)
        return self.features(signal)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(list(batch)).astype(np.float32, copy=False)
