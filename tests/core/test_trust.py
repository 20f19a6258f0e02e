"""``modelyard.core.trust``: which entrypoints and paths a role may name in a job spec."""

import pytest

from modelyard.core.errors import Forbidden, InvalidInput
from modelyard.core.trust import Caller, check_entrypoint, check_files, check_path, is_server_path

EDITOR, ADMIN = Caller("e", "editor"), Caller("a", "admin")


@pytest.mark.parametrize("entrypoint", ["modelyard.runtime.zoo:tiny_cnn", "modelyard.runtime.zoo:hf_resnet", None])
def test_zoo_factories_are_allowed_for_everyone(entrypoint):
    check_entrypoint(entrypoint, EDITOR)


@pytest.mark.parametrize("entrypoint", [
    "subprocess:run", "os:system", "builtins:exec", "modelyard.runtime.zoo:_seeded",
    "modelyard.runtime.zoo:annotations", "modelyard.runtime.zoo:tiny_cnn.__globals__",
    "modelyard.runtime.zoo_evil:tiny_cnn", "modelyard.runtime:zoo", "modelyard.runtime.zoo:nope",
])
def test_anything_else_is_code_and_needs_admin(entrypoint):
    with pytest.raises(Forbidden, match="needs the admin role") as caught:
        check_entrypoint(entrypoint, EDITOR)
    assert caught.value.status == 403 and caught.value.code == "code_not_allowed"
    check_entrypoint(entrypoint, ADMIN)


@pytest.mark.parametrize("value", ["/etc/passwd", "~/.ssh/id_rsa", "../x", "a/../../x", "C:/x", "c:\\x", "\\\\host\\x",
                                   "..\\..\\x"])
def test_server_paths(value):
    assert is_server_path(value)
    with pytest.raises(Forbidden, match="names a path on the server"):
        check_path(value, EDITOR, "spec.input")
    check_path(value, ADMIN, "spec.input")


@pytest.mark.parametrize("value", ["model.onnx", "data/images", "a..b.csv", "./x.yaml"])
def test_relative_names_are_fine(value):
    assert not is_server_path(value)
    check_path(value, EDITOR, "spec.input")


def test_files_names_and_digests():
    good = "sha256:" + "a" * 64
    assert check_files({"m.onnx": good, "imgs/cat/1.png": "b" * 64}) is not None
    for files in ({"/abs": good}, {"../up": good}, {"a//b": good}, {"a/./b": good}, {"dir/": good},
                  {"ok": "sha256:nothex"}, {"x" * 201: good}):
        with pytest.raises(InvalidInput):
            check_files(files)
