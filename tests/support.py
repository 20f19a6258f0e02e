"""Helpers the tests share: running the real CLI and a real server. Imported as ``from support import ...``
(a plain module, so sub-folder conftest.py files cannot shadow it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PG_ENV = "MODELYARD_TEST_PG_URL"


def cli_env(home: Path | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_") or k == PG_ENV}
    if home is not None:
        env["MODELYARD_HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    env["COLUMNS"] = "200"
    return env


def run_cli(*args: str, home: Path | None = None, check: bool = False, timeout: float = 120, **extra_env):
    """Run ``modelyard ...`` as a real process; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard.cli.main", *args],
        capture_output=True, text=True, env=cli_env(home, **extra_env), timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"modelyard {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


class ServerProcess:
    def __init__(self, home: Path, proc: subprocess.Popen, url: str, token: str):
        self.home, self.proc, self.url, self.token = home, proc, url, token

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(home: Path, *extra: str, token: str | None = None, timeout: float = 60) -> ServerProcess:
    """``modelyard init`` (if needed) + ``modelyard server --port 0`` on 127.0.0.1; waits until it answers."""
    import httpx

    if token is None:
        token = json.loads(run_cli("init", "--json", home=home, check=True).stdout)["token"]
    info = home / "server.json"
    info.unlink(missing_ok=True)
    log_path = home / "server-test.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.main", "--home", str(home), "server", "--port", "0", *extra],
            env=cli_env(home), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log_path.read_text()}")
        if info.exists():
            url = json.loads(info.read_text())["url"]
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return ServerProcess(home, proc, url, token)
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()  # reaped: a Popen still running when collected is a ResourceWarning (an error here) on top
    raise AssertionError(f"server did not come up within {timeout:.0f} s: {log_path.read_text()[-2000:]}")


def stop_supervisor(home: Path, timeout: float = 60.0) -> list[str]:
    """Stop the services supervisor of ``home`` (and so its replicas) whatever state a test left it in: a graceful
    stop first, then SIGKILL for anything still naming ``home``. Returns what went wrong, if anything (assert it is
    empty: a supervisor that ignores SIGTERM, or a process left behind, is a bug)."""
    from modelyard.deploy import supervisor

    problems = []
    try:
        if not supervisor.stop(home, timeout=timeout):
            problems.append(f"the supervisor of {home} did not stop within {timeout:.0f} s of SIGTERM")
        # a supervisor whose last service the test stopped exits by itself a few seconds later, and gives up its
        # lock just before the interpreter exits: stop() then finds nothing to stop while the process is still on
        # its way out. Give such a process a moment before calling it left behind.
        deadline = time.monotonic() + 10
        while processes_naming(home) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        problems += [f"killed pid {pid}, left running: {command[:200]}" for pid, command in kill_processes_naming(home)]
    return problems


def _command_lines() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "cmdline").read_bytes()
            if raw:
                found[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _ancestors() -> set[int]:
    pids, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            break
        pid = int(fields[1])
        pids.add(pid)
    return pids


def processes_naming(folder: Path) -> dict[int, str]:
    """``{pid: command line}`` of every process whose command line names ``folder`` (or a path under it), except this
    process and its ancestors. Linux only (``/proc``); elsewhere it finds nothing."""
    needle = str(folder)
    own = _ancestors()
    # the folder itself or a path under it: /tmp/pytest-89 must not match /tmp/pytest-890
    return {pid: command for pid, command in _command_lines().items()
            if pid not in own and any(f"{needle}{end}" in f"{command} " for end in (os.sep, " ", "'", '"'))}


def kill_processes_naming(folder: Path) -> list[tuple[int, str]]:
    """SIGKILL every process :func:`processes_naming` finds; returns ``(pid, command line)`` of each."""
    killed = []
    for pid, command in processes_naming(folder).items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, command))
    return killed


def matmul_onnx(path, weight=None):
    """A tiny ONNX model ``y = x @ weight`` on ``x [batch, 2] float32`` (default weight: the identity;
    milliseconds, no torch)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.eye(2, dtype=np.float32) if weight is None else np.asarray(weight, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


DETECTOR_CLASSES = ["cat", "dog"]
DETECTOR_BOXES = [[[4, 12, 20, 20], [0, 8, 8, 16]]]  # xyxy in the 32x32 input


def detector_onnx(path: Path) -> Path:
    """A detector with the decoding inside, as Modelyard exports them: ``image [1, 3, 32, 32]`` -> ``boxes [1, 2,
    4]`` (fixed), ``scores [1, 2]`` = ``[0.9, mean pixel value]`` and ``classes [1, 2]`` = ``[dog, cat]``, so a
    dark image shows one box and a bright one two."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
         helper.make_node("Reshape", ["mean4", "to_n1"], ["mean"]),
         helper.make_node("Mul", ["mean", "second_only"], ["brightness"]),
         helper.make_node("Add", ["brightness", "base_scores"], ["scores"]),
         helper.make_node("Identity", ["fixed_boxes"], ["boxes"]),
         helper.make_node("Identity", ["fixed_classes"], ["classes"])], "detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 2, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("classes", TensorProto.INT64, [1, 2])],
        [numpy_helper.from_array(np.array([1, 1], np.int64), "to_n1"),
         numpy_helper.from_array(np.array([[0.0, 1.0]], np.float32), "second_only"),
         numpy_helper.from_array(np.array([[0.9, 0.0]], np.float32), "base_scores"),
         numpy_helper.from_array(np.array(DETECTOR_BOXES, np.float32), "fixed_boxes"),
         numpy_helper.from_array(np.array([[1, 0]], np.int64), "fixed_classes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


DETECTOR_TASK = {"type": "detection", "classes": DETECTOR_CLASSES, "postprocess": {"kind": "boxes"}}
DETECTOR_PREPROCESSING = {"size": [32, 32], "resize": "letterbox"}
