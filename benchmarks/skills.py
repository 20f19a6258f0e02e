"""Benchmark: the built-in skills - OCR character error rate, speech round trip (TTS -> ASR) word error rate, and
the latency of every built-in skill called as an EI-style REST service (``modelyard skills serve`` in its own
process, called over HTTP on 127.0.0.1).

Anchors in the same run: for OCR, Tesseract (``tesseract`` CLI, when installed) on the same images; for speech, the
word error rate of the identity transcript is 0 by definition, so the figure is compared with the issue's threshold
of the self-check (0.2).

Run: ``.venv/bin/python benchmarks/skills.py [--data DIR] [--repeats N]``

``--data DIR`` reads ``DIR/ocr/*.png`` with ``DIR/ocr/labels.tsv`` (file, tab, text) and ``DIR/speech/sentences.txt``
(one sentence a line); without it, text lines are rendered with PIL and a built-in sentence list is used. The last
line printed is one JSON object with at least ``ocr_cer`` and ``tts_asr_wer``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = [
    "please open the front door", "the meeting starts at nine in the morning", "call me when you get home",
    "what is the weather like today", "set an alarm for seven o'clock", "play some music in the living room",
    "the train to the airport leaves every ten minutes", "turn off the lights in the garage",
    "my order number is four five six", "send the report to the team before lunch",
]
OCR_LINES = [
    "Invoice 4711 paid", "Total amount: 1,234.50 EUR", "Delivery on 12 March 2026", "Gate B17 boarding 14:35",
    "Serial number SN-88213-X", "Keep refrigerated below 5 C", "Platform 3 - Express to Berlin",
    "Customer ID 000917 priority", "Batch L2309 expires 2027-01", "Room 214, second floor",
    "Speed limit 80 km/h", "Order #55120 shipped today",
]


def make_default_data(folder: Path) -> Path:
    from PIL import Image

    from modelyard.edge.skills.media import render_text

    (folder / "ocr").mkdir(parents=True, exist_ok=True)
    (folder / "speech").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, line in enumerate(OCR_LINES):
        name = f"line{index:02d}.png"
        Image.fromarray(render_text(line)).save(folder / "ocr" / name)
        rows.append(f"{name}\t{line}")
    (folder / "ocr" / "labels.tsv").write_text("\n".join(rows) + "\n")
    (folder / "speech" / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    return folder


def ocr_figures(data: Path) -> dict:
    import numpy as np
    from PIL import Image

    from modelyard.edge.skills.builtin.registry import load_builtin
    from modelyard.edge.skills.scoring import character_error_rate

    ocr = load_builtin("ocr")
    labels = [line.split("\t", 1) for line in (data / "ocr" / "labels.tsv").read_text().splitlines() if line.strip()]
    errors, chars, tess_errors, seconds = 0.0, 0, 0.0, []
    tesseract = shutil.which("tesseract")
    for name, text in labels:
        with Image.open(data / "ocr" / name) as image:
            frame = np.asarray(image.convert("RGB"))
        started = time.perf_counter()
        got = ocr.read_text(frame)["text"]
        seconds.append(time.perf_counter() - started)
        errors += character_error_rate(text, got) * len(text)
        chars += len(text)
        if tesseract:
            out = subprocess.run([tesseract, str(data / "ocr" / name), "-", "--psm", "7"], capture_output=True,
                                 text=True, check=False).stdout
            tess_errors += character_error_rate(text, out.strip()) * len(text)
    return {"ocr_cer": round(errors / max(1, chars), 4), "ocr_images": len(labels),
            "ocr_ms_median": round(statistics.median(seconds) * 1000, 1),
            "anchor_tesseract_cer": round(tess_errors / max(1, chars), 4) if tesseract else None}


def speech_figures(data: Path) -> dict:
    from modelyard.edge.skills.builtin.registry import load_builtin
    from modelyard.edge.skills.scoring import edit_distance

    tts, asr = load_builtin("speech-synthesis"), load_builtin("speech-recognition")
    sentences = [s.strip() for s in (data / "speech" / "sentences.txt").read_text().splitlines() if s.strip()]
    word_errors, words, audio_s, tts_s = 0, 0, 0.0, 0.0
    for sentence in sentences:
        started = time.perf_counter()
        audio, rate = tts.synthesize(sentence)
        tts_s += time.perf_counter() - started
        audio_s += audio.size / rate
        got = asr.transcribe(audio, rate)
        ref = sentence.lower().replace(",", "").split()
        word_errors += edit_distance(ref, got.lower().split())
        words += len(ref)
    return {"tts_asr_wer": round(word_errors / max(1, words), 4), "sentences": len(sentences),
            "tts_real_time_factor": round(tts_s / max(audio_s, 1e-9), 3)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_latency(repeats: int) -> dict:
    """Start ``modelyard skills serve`` and time each built-in skill over HTTP (median of ``repeats``)."""
    import httpx
    from PIL import Image

    from modelyard.edge.skills.builtin.registry import load_builtin, standalone_builtins
    from modelyard.edge.skills.media import render_text

    png = io.BytesIO()
    Image.fromarray(render_text("Sample 42 ready")).save(png, format="PNG")
    tts = load_builtin("speech-synthesis")
    audio, rate = tts.synthesize("please open the front door")
    wav = tts.wav_bytes(audio, rate)
    bodies = {
        "ocr": {"image_b64": base64.b64encode(png.getvalue()).decode()},
        "face-detection": {"image_b64": base64.b64encode(png.getvalue()).decode()},
        "speech-recognition": {"wav_b64": base64.b64encode(wav).decode()},
        "speech-synthesis": {"text": "Your parcel has arrived."},
        "text-embeddings": {"query": "forgot my password", "documents": ["reset your login", "cats sleep"]},
    }
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "skills", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    figures = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    http.get("/healthz").raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the skill service did not start: "
                                           + proc.stderr.read().decode()[-500:]) from None
                    time.sleep(0.2)
            for name in standalone_builtins():
                body = bodies.get(name, {"text": "The new release works great and the team is happy."})
                first = http.post(f"/v1/skills/{name}", json=body)  # loads the skill
                first.raise_for_status()
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    http.post(f"/v1/skills/{name}", json=body).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                figures[name] = round(statistics.median(times), 2)
    finally:
        proc.terminate()
        proc.wait(30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="DIR with ocr/ and speech/ (default: generated)")
    parser.add_argument("--repeats", type=int, default=5, help="REST calls timed per skill (median)")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST latency part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or make_default_data(Path(scratch))
        result = {"benchmark": "skills", "data": str(args.data) if args.data else "generated",
                  "cpus": os.cpu_count()}
        result |= ocr_figures(data)
        print(f"OCR: CER {result['ocr_cer']:.4f} on {result['ocr_images']} images "
              f"(Tesseract anchor: {result['anchor_tesseract_cer']})", flush=True)
        result |= speech_figures(data)
        print(f"TTS -> ASR: WER {result['tts_asr_wer']:.4f} on {result['sentences']} sentences", flush=True)
        if not args.no_rest:
            result["rest_latency_ms"] = service_latency(args.repeats)
            for name, ms in result["rest_latency_ms"].items():
                print(f"REST {name}: {ms} ms (median of {args.repeats})", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
