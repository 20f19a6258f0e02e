"""`python -m build` makes a wheel that works on its own: installed into a fresh virtual environment, away from the
source tree, it initialises a workspace (database migrations), serves the console (templates, static assets),
analyses GPU code (rule files), and runs the demo's data → AutoML → registry steps.

The fresh venv gets the package only from the wheel (`pip install --no-deps`); its third-party dependencies come from
the test environment's site-packages through a path entry, since installing torch and friends again would take
minutes and prove nothing about our packaging. The editable install of the source tree is not visible there: a
path entry's own ``.pth`` files (the editable finder) are not processed.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    # build from a copy of the tracked sources, so the build's egg-info and build/ never touch the checkout
    source = root / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (name.startswith(("src/", "README", "LICENSE")) or name == "pyproject.toml"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELYARD_", "PYTHON"))}
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"), str(source)],
         root, env)
    wheels = list((root / "dist").glob("modelyard-*.whl"))
    assert len(wheels) == 1, wheels

    target = root / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "deps-from-test-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheels[0])], root, env)
    work = root / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{target / 'bin'}{os.pathsep}{env['PATH']}"
    env["MODELYARD_HOME"] = str(work / "home")
    return {"python": python, "bin": target / "bin", "cwd": work, "env": env, "purelib": Path(purelib)}


def test_the_wheel_is_what_runs_not_the_source_tree(wheel_env):
    out = _run([str(wheel_env["python"]), "-c", "import modelyard; print(modelyard.__file__)"], wheel_env["cwd"],
               wheel_env["env"])
    assert Path(out.strip()).is_relative_to(wheel_env["purelib"]), out


def test_init_and_the_server_with_its_console_from_the_wheel(wheel_env):
    cli, cwd, env = str(wheel_env["bin"] / "modelyard"), wheel_env["cwd"], wheel_env["env"]
    init = json.loads(_run([cli, "init", "--json"], cwd, env))
    assert init["created"] and init["token"]
    home = Path(env["MODELYARD_HOME"])
    log = cwd / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([cli, "server", "--port", "0"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (home / "server.json").is_file():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        url = json.loads((home / "server.json").read_text())["url"]
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        with urllib.request.urlopen(f"{url}/login", timeout=10) as response:
            page = response.read().decode()
            assert "<form" in page and "/static/console/console.css" in page
        with urllib.request.urlopen(f"{url}/static/console/htmx.min.js", timeout=10) as response:
            assert response.status == 200 and len(response.read()) > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_demo_main_steps_from_the_wheel(wheel_env, tmp_path):
    cli, cwd, env = str(wheel_env["bin"] / "modelyard"), wheel_env["cwd"], wheel_env["env"]
    project = tmp_path / "gpu_project"
    project.mkdir()
    (project / "train.py").write_text("import torch\nmodel = torch.nn.Linear(2, 2).cuda()\n"
                                      "torch.cuda.synchronize()\n")
    analysis = json.loads(_run([cli, "migrate", "analyze", str(project), "--target", "npu", "--json"], cwd, env))
    assert analysis["findings"], analysis
    _run([cli, "data", "sample", "iris", "-o", str(tmp_path / "iris.csv")], cwd, env)
    _run([cli, "data", "import", str(tmp_path / "iris.csv"), "--name", "iris"], cwd, env)
    trained = json.loads(_run([cli, "automl", "train", "iris@1", "--name", "iris-model", "--time-budget", "6",
                               "--no-refit", "--json"], cwd, env, timeout=300))
    assert trained["model"] == "iris-model@1" and trained["score"] > 0.8, trained
    shown = json.loads(_run([cli, "models", "show", "iris-model@1", "--json"], cwd, env))
    assert shown["format"] == "onnx"
