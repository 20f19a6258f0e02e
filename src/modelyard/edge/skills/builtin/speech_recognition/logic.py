"""Speech recognition: pocketsphinx's English model (inside its wheel); audio resampled to 16 kHz."""

import base64
import io
import wave

import numpy as np

from modelyard.edge.skills.scoring import word_error_rate

STATE = {}
RATE = 16000


def setup(config):
    if "decoder" not in STATE:
        from pocketsphinx import Decoder

        STATE["decoder"] = Decoder(samprate=RATE, loglevel="FATAL")


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV (mono, or the first channel) -> samples, rate; anything else is a clear ValueError."""
    try:
        with wave.open(io.BytesIO(data)) as source:
            width, channels, rate = source.getsampwidth(), source.getnchannels(), source.getframerate()
            frames = source.readframes(source.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"speech recognition takes a PCM WAV file: {exc}") from exc
    if width != 2:
        raise ValueError(f"speech recognition takes 16-bit PCM audio, this has {8 * width}-bit samples")
    audio = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)[:, 0]
    return audio, rate


def transcribe(audio: np.ndarray, rate: int) -> str:
    if rate != RATE:
        positions = np.arange(0, audio.size, rate / RATE)
        audio = np.interp(positions, np.arange(audio.size), audio.astype(np.float64)).astype(np.int16)
    decoder = STATE["decoder"]
    decoder.start_utt()
    decoder.process_raw(audio.astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def process(item, channel):
    if "wav" in item:
        audio, rate = read_wav(item["wav"])
    elif "wav_b64" in item:
        audio, rate = read_wav(base64.b64decode(item["wav_b64"]))
    elif "audio" in item:
        audio, rate = np.asarray(item["audio"]), int(item.get("sample_rate", RATE))
    else:
        raise ValueError("speech recognition takes wav (bytes), wav_b64 or audio + sample_rate")
    return [{"text": transcribe(audio, rate), "seconds": round(audio.size / rate, 3)}]


def self_check():
    """Synthesise a sentence with the bundled voice and recognise it back (both skills must work)."""
    from modelyard.edge.skills.builtin.registry import load_builtin

    tts = load_builtin("speech-synthesis")
    expected = "please open the front door"
    audio, rate = tts.synthesize(expected)
    got = transcribe(audio, rate)
    error_rate = word_error_rate(expected, got)
    return {"ok": error_rate <= 0.2, "expected": expected, "got": got, "wer": round(error_rate, 3)}
