"""Speech recognition: silero-vad (its ONNX model, inside its wheel, run with onnxruntime: no torch) finds the speech
segments, pocketsphinx's English model (inside its wheel) transcribes each; audio resampled to 16 kHz. Silence and
noise between utterances never reach the recogniser, which otherwise hallucinates words in them."""

import base64
import io
import wave

import numpy as np

from modelyard.edge.skills.scoring import word_error_rate

STATE = {}
RATE = 16000
VAD_CHUNK = 512  # samples per silero-vad step at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous chunk silero-vad sees with each one
VAD_PAD_CHUNKS = 3  # ~100 ms kept around each speech segment (word onsets and endings)


def setup(config):
    if "decoder" not in STATE:
        from pocketsphinx import Decoder

        STATE["decoder"] = Decoder(samprate=RATE, loglevel="FATAL")
    if "vad" not in STATE:
        import onnxruntime

        from modelyard.edge.skills.builtin.registry import builtin_dir
        from modelyard.edge.skills.manifest import load_manifest

        model = next(m for m in load_manifest(builtin_dir("speech-recognition")).models if m.name == "vad")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # 32 ms steps: threads cost more than win
        STATE["vad"] = onnxruntime.InferenceSession(str(model.locate()), options,
                                                    providers=["CPUExecutionProvider"])
    STATE["vad_threshold"] = float(config.get("vad_threshold", 0.5))


def speech_segments(audio: np.ndarray, threshold: float | None = None) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample ranges of 16 kHz ``audio`` that silero-vad finds speech in (padded, merged)."""
    session = STATE["vad"]
    threshold = STATE.get("vad_threshold", 0.5) if threshold is None else threshold
    samples = audio.astype(np.float32) / 32768.0
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
    speech = []
    for start in range(0, samples.size, VAD_CHUNK):
        chunk = np.zeros((1, VAD_CHUNK), dtype=np.float32)
        piece = samples[start:start + VAD_CHUNK]
        chunk[0, :piece.size] = piece
        probability, state = session.run(None, {"input": np.concatenate([context, chunk], axis=1), "state": state,
                                                "sr": np.array(RATE, dtype=np.int64)})
        context = chunk[:, -VAD_CONTEXT:]
        speech.append(float(probability.reshape(-1)[0]) >= threshold)
    segments: list[tuple[int, int]] = []
    for index, is_speech in enumerate(speech):
        if not is_speech:
            continue
        start = max(0, (index - VAD_PAD_CHUNKS) * VAD_CHUNK)
        end = min(samples.size, (index + 1 + VAD_PAD_CHUNKS) * VAD_CHUNK)
        if segments and start <= segments[-1][1]:
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((start, end))
    return segments


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


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return audio.astype(np.int16)
    positions = np.arange(0, audio.size, rate / RATE)
    return np.interp(positions, np.arange(audio.size), audio.astype(np.float64)).astype(np.int16)


def transcribe(audio: np.ndarray, rate: int, segments: list[tuple[int, int]] | None = None) -> str:
    """The words in ``audio``: each speech segment (default: silero-vad's) recognised as one utterance."""
    audio = resample(audio, rate)
    if segments is None:
        segments = speech_segments(audio)
    decoder, words = STATE["decoder"], []
    for start, end in segments:
        decoder.start_utt()
        decoder.process_raw(audio[start:end].tobytes(), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is not None and hypothesis.hypstr:
            words.append(hypothesis.hypstr)
    return " ".join(words)


def process(item, channel):
    if "wav" in item:
        audio, rate = read_wav(item["wav"])
    elif "wav_b64" in item:
        audio, rate = read_wav(base64.b64decode(item["wav_b64"]))
    elif "audio" in item:
        audio, rate = np.asarray(item["audio"]), int(item.get("sample_rate", RATE))
    else:
        raise ValueError("speech recognition takes wav (bytes), wav_b64 or audio + sample_rate")
    segments = speech_segments(resample(audio, rate))
    return [{"text": transcribe(audio, rate, segments), "seconds": round(audio.size / rate, 3),
             "speech_seconds": round(sum(end - start for start, end in segments) / RATE, 3)}]


def self_check():
    """Synthesise a sentence with the bundled voice and recognise it back (both skills must work)."""
    from modelyard.edge.skills.builtin.registry import load_builtin

    tts = load_builtin("speech-synthesis")
    expected = "please open the front door"
    audio, rate = tts.synthesize(expected)
    got = transcribe(audio, rate)
    error_rate = word_error_rate(expected, got)
    return {"ok": error_rate <= 0.2, "expected": expected, "got": got, "wer": round(error_rate, 3)}
