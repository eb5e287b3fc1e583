"""Config validation: good files load, bad ones give one line naming the file and field."""


import pytest

from vlatwin.config.loader import config_from_dict, load_config
from vlatwin.errors import ConfigError


def test_shipped_configs_load(repo_root):
    """Every config in configs/ validates."""
    paths = sorted((repo_root / "configs").glob("*.yaml"))
    assert paths
    for path in paths:
        cfg = load_config(path)
        assert cfg.scene.name


def test_tabletop_contents(tabletop_config):
    """The default cell has the arm, ten objects of all five shapes, lights and cameras."""
    scene = tabletop_config.scene
    assert len(scene.objects) == 10
    assert {o.shape for o in scene.objects} == {"box", "sphere", "cylinder", "capsule", "convex_mesh"}
    assert scene.robot.source == "builtin"
    assert scene.robot_base_position() == (0.0, 0.0, scene.table.size[2])
    assert {c.name for c in scene.cameras} == {"front", "top"}


OBJ = {"name": "c", "shape": "box", "size": [0.1, 0.1, 0.1], "position": [0, 0, 1]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"scene": {"tabel": {}}}, "configs/x.yaml: scene.tabel: unknown key (did you mean 'table'?)"),
        ({"scene": {"objects": [OBJ, OBJ | {"name": "d", "size": [0.1, 0.1]}]}}, "configs/x.yaml: scene.objects[1].size: expected 3 positive numbers"),
        ({"scene": {"objects": [OBJ | {"size": [0.1, -1, 0.1]}]}}, "configs/x.yaml: scene.objects[0].size: expected 3 positive numbers"),
        ({"scene": {"objects": [OBJ | {"position": [0, float("nan"), 1]}]}}, "configs/x.yaml: scene.objects[0].position: expected 3 finite numbers"),
        ({"scene": {"physics": {"dt": float("nan")}}}, "configs/x.yaml: scene.physics.dt: Input should be a finite number"),
        ({"scene": {"physics": {"dt": -0.01}}}, "configs/x.yaml: scene.physics.dt: Input should be greater than 0"),
        ({"scene": {"objects": [OBJ | {"material": "gold"}]}}, "configs/x.yaml: scene.objects[0].material: unknown material 'gold'"),
        ({"scene": {"objects": [OBJ | {"shape": "cylinder", "size": None, "radius": 0.1}]}}, "configs/x.yaml: scene.objects[0]: shape 'cylinder' needs 'height'"),
        ({"scene": {"objects": [OBJ | {"radius": 0.1}]}}, "configs/x.yaml: scene.objects[0]: 'radius' does not apply to shape 'box'"),
        ({"scene": {"objects": [OBJ, OBJ]}}, "configs/x.yaml: scene.objects[1].name: duplicate name 'c'"),
        ({"scene": {"objects": [OBJ | {"shape": "pyramid"}]}}, "configs/x.yaml: scene.objects[0].shape: expected one of 'box', 'sphere'"),
        ({"scene": {"objects": [OBJ | {"name": "has space"}]}}, "configs/x.yaml: scene.objects[0].name: String should match pattern"),
        ({"scene": {"cameras": [{"name": "c", "position": [1, 0, 1], "look_at": [0, 0, 0], "resolution": [0, 480]}]}}, "configs/x.yaml: scene.cameras[0].resolution: expected 2 positive integers"),
        ({"scene": {"cameras": [{"name": "c", "position": [1, 0, 1], "look_at": [0, 0, 0], "fov_deg": 0}]}}, "configs/x.yaml: scene.cameras[0].fov_deg: Input should be greater than 0"),
        ({"scene": {"cameras": [{"name": "c", "position": [1, 0, 1], "look_at": [1, 0, 1]}]}}, "configs/x.yaml: scene.cameras[0]: 'position' and 'look_at' coincide"),
        ({"scene": {"robot": {"source": "urdf"}}}, "configs/x.yaml: scene.robot: 'path' is required when source is 'urdf'"),
        ({"scene": {"robot": {"source": "usd", "path": "missing.usda"}}}, "configs/x.yaml: scene.robot.path: file not found"),
        ({"scene": {"objects": [OBJ | {"shape": "convex_mesh", "size": None, "mesh_file": "nope.obj"}]}}, "configs/x.yaml: scene.objects[0].mesh_file: file not found"),
        ({"scene": {"lights": [{"name": "l", "type": "spot", "intensity": 1}]}}, "configs/x.yaml: scene.lights[0].type: expected one of"),
        (["scene"], "configs/x.yaml: expected a mapping at the top level"),
    ],
)
def test_bad_values_name_file_and_field(data, expected, tmp_path):
    """Each problem is reported as one line that starts with file + field path."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="configs/x.yaml", base_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    """A YAML syntax error points at the line and column."""
    path = tmp_path / "broken.yaml"
    path.write_text("scene:\n  objects: [\n    {name: a\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+:\d+: YAML syntax error"):
        load_config(path)


def test_missing_config_file(tmp_path):
    """A missing config names the path."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_paths_resolve_relative_to_config(tmp_path):
    """mesh_file is found next to the config, whatever the working directory."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rock.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n")
    cfg_path = tmp_path / "sub" / "scene.yaml"
    cfg_path.write_text(
        "scene:\n  objects:\n    - {name: rock, shape: convex_mesh, mesh_file: rock.obj, position: [0, 0, 1]}\n"
    )
    cfg = load_config(cfg_path)
    assert cfg.scene.objects[0].mesh_file == (tmp_path / "sub" / "rock.obj").resolve()


def test_camera_focal_length_from_fov():
    """fov_deg turns into the focal length Isaac reads: f = aperture / (2 tan(fov/2))."""
    import math

    cfg = config_from_dict({"scene": {"cameras": [{"name": "c", "position": [1, 0, 1], "look_at": [0, 0, 0], "fov_deg": 90}]}})
    cam = cfg.scene.cameras[0]
    assert cam.focal_length_mm == pytest.approx(cam.horizontal_aperture / 2.0)
    assert 2 * math.degrees(math.atan(cam.horizontal_aperture / 2 / cam.focal_length_mm)) == pytest.approx(90.0)
    assert cam.vertical_aperture == pytest.approx(cam.horizontal_aperture * 480 / 640)


def test_scene_level_errors_name_the_config(tmp_path):
    """Problems found while authoring (a LIDAR riding on a prim that is no rigid body) name file and field."""
    from vlatwin.usd.scene_builder import write_scene

    path = tmp_path / "lidar.yaml"
    path.write_text("scene:\n  lidars:\n    - {name: l, profile: VLP-16, position: [0, 0, 0.2], parent: /World/Nope}\n")
    with pytest.raises(ConfigError) as info:
        write_scene(load_config(path).scene, tmp_path / "s.usda", source=path)
    assert str(info.value).startswith(f"{path}: scene.lidars[0].parent: /World/Nope is not a rigid body")
