"""A command whose optional dependency is missing says, in one line, which extra installs it."""

import subprocess
import sys

import pytest

from support import cli_env

# runs the real CLI with pandas made unimportable (as on a machine whose install set lacks it)
WITHOUT_PANDAS = ("import sys; sys.modules['pandas'] = None; from modelyard.cli.main import main; "
                  "sys.exit(main(sys.argv[1:]))")


def test_data_sample_without_pandas_names_the_extra(tmp_path):
    out = tmp_path / "bc.csv"
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PANDAS, "data", "sample", "breast_cancer", "-o", str(out)],
                          capture_output=True, text=True, env=cli_env(tmp_path / "w"), timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines() == ["error: this needs pandas: pip install 'modelyard[ml]'"]
    assert not out.exists()


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_a_bare_import_of_a_declared_module_gets_the_same_line(tmp_path):
    """Code that imports pandas plainly (data import of a table) is covered by the CLI's last line of defence."""
    table = tmp_path / "t.csv"
    table.write_text("a,label\n1,x\n2,y\n")
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PANDAS, "data", "import", str(table), "--name", "t"],
                          capture_output=True, text=True, env=cli_env(tmp_path / "w"), timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1] == "error: this needs pandas: pip install 'modelyard[ml]'"
