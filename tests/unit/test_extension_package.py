"""The Kit extension folder is also the pip project: one version, Kit glue outside the package import."""

import subprocess
import sys
import tomllib

from PIL import Image

import vlatwin


def test_manifest_and_version(repo_root):
    """extension.toml is valid TOML with the Kit tables; its version is the package's and pip's."""
    ext = repo_root / "exts" / "vlatwin"
    manifest = tomllib.loads((ext / "config" / "extension.toml").read_text())
    package = manifest["package"]
    assert package["version"] == vlatwin.__version__
    from importlib.metadata import version

    assert version("vlatwin") == vlatwin.__version__
    assert [m["name"] for m in manifest["python"]["module"]] == ["vlatwin.extension"]
    for dep in ("omni.replicator.core", "isaacsim.core.api", "isaacsim.sensors.rtx", "omni.kit.menu.utils"):
        assert dep in manifest["dependencies"]
    assert manifest["test"][0]["timeout"] > 0
    for key in ("readme", "changelog", "icon", "preview_image"):
        assert (ext / package[key]).is_file(), key
    icon = Image.open(ext / package["icon"])
    assert icon.size == (256, 256)
    assert Image.open(ext / package["preview_image"]).width >= 640


def test_kit_modules_are_not_imported_by_the_package():
    """`import vlatwin` and its submodules never import the Kit-only extension/ui modules."""
    code = (
        "import vlatwin, vlatwin.sim.factory, vlatwin.sdg.pipeline, vlatwin.sim.isaac_convert, sys;"
        "bad=[m for m in sys.modules if m.startswith(('vlatwin.extension','vlatwin.ui','omni','isaacsim'))];"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_isaac_backend_refuses_cleanly_without_kit():
    """Asking for the isaacsim backend outside Isaac Sim is a one-line error naming the fix."""
    import pytest

    from vlatwin.errors import VlatwinError
    from vlatwin.sim.factory import make_backend

    with pytest.raises(VlatwinError, match="runs inside Isaac Sim only"):
        make_backend("isaacsim")
