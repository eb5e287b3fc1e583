"""A USD stage opened in Blender for Cycles: geometry from Blender's USD importer, then materials,
lights and world rebuilt from the stage by vlatwin, because the importer gets them wrong (see
``shared/reference/photoreal-cycles.md``: gprims lose their materials, light units are rescaled,
the dome light is dropped).

Only called from :mod:`vlatwin.sensors.camera.cycles_renderer` (``bpy`` is imported there).
Blender objects are matched to USD prims by their parent chain (Blender renames duplicates
``name.001``; USD names cannot contain a dot, so the part before the first dot is the prim name).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vlatwin.sensors.camera import photometry as ph

log = logging.getLogger(__name__)

CURVED_SEGMENTS = 96
"""Segments around spheres, cylinders and capsules: a 96-gon covers 99.93% of its circle, so a
silhouette agrees with the exact ray-cast shape to well under a pixel at 1280 px wide."""


GROUND_HALF_SIZE = 1.0e5
"""Half the side of the square that stands in for an infinite ground plane [m]."""


def prim_path_of(obj) -> str:
    parts = []
    while obj is not None:
        parts.append(obj.name.split(".", 1)[0])
        obj = obj.parent
    return "/" + "/".join(reversed(parts))


def import_stage(bpy, stage_path: Path, stage) -> dict[str, object]:
    """Open ``stage_path`` in an empty Blender scene; returns {USD prim path: Blender object}."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.wm.usd_import(
        filepath=str(stage_path),
        merge_parent_xform=False,
        import_materials=False,
        import_lights=False,
        import_cameras=False,
        import_visible_only=True,
        import_guide=False,
        import_proxy=False,
        import_render=True,
        apply_unit_conversion_scale=False,
        set_frame_range=False,
        create_world_material=False,
    )
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender could not import {stage_path}")
    # The importer makes no object for typeless prims (e.g. a parent created by Define): match on the
    # chain of typed ancestors' names (``stage`` is the same file, already open).
    by_chain = {}
    for prim in stage.Traverse():
        chain = tuple(p.GetName() for p in _ancestors(prim) if p.GetTypeName())
        by_chain.setdefault(chain, str(prim.GetPath()))
    objects = {}
    for obj in bpy.data.objects:
        chain = tuple(prim_path_of(obj).strip("/").split("/"))
        if chain in by_chain:
            objects[by_chain[chain]] = obj
    return objects


def _ancestors(prim):
    """``prim`` and its ancestors below the pseudo-root, root first."""
    chain = []
    while prim and not prim.IsPseudoRoot():
        chain.append(prim)
        prim = prim.GetParent()
    return reversed(chain)


def _meshes(stage, objects: dict):
    """(prim path, Blender mesh object, USD prim) for every imported mesh that has a prim."""
    for path, obj in objects.items():
        prim = stage.GetPrimAtPath(path) if obj.type == "MESH" else None
        if prim:
            yield path, obj, prim


# ------------------------------------------------------------------------------------ geometry
def rebuild_curved_gprims(bpy, stage, objects: dict) -> None:
    """Re-tessellate Sphere / Cylinder / Capsule gprims finely (the importer uses ~10 segments) and smooth-shade
    them; planes become infinite ground; meshes without authored normals are shaded flat."""
    import bmesh
    from pxr import UsdGeom

    for path, obj, prim in _meshes(stage, objects):
        if prim.IsA(UsdGeom.Sphere):
            radius = float(UsdGeom.Sphere(prim).GetRadiusAttr().Get())
            verts_faces = _capsule(radius, 0.0, "Z")
        elif prim.IsA(UsdGeom.Capsule):
            cap = UsdGeom.Capsule(prim)
            verts_faces = _capsule(float(cap.GetRadiusAttr().Get()), float(cap.GetHeightAttr().Get()), cap.GetAxisAttr().Get())
        elif prim.IsA(UsdGeom.Cylinder):
            cyl = UsdGeom.Cylinder(prim)
            verts_faces = _cylinder(float(cyl.GetRadiusAttr().Get()), float(cyl.GetHeightAttr().Get()), cyl.GetAxisAttr().Get())
        elif prim.IsA(UsdGeom.Plane):
            # The simulation and the ray-cast camera treat a plane as infinite ground: so does Cycles.
            verts_faces = _plane(GROUND_HALF_SIZE, UsdGeom.Plane(prim).GetAxisAttr().Get())
        else:
            if prim.IsA(UsdGeom.Mesh) and not _has_normals(prim):
                # Without authored normals a polygon mesh is faceted (as the ray cast shades it); the
                # importer smooths it, which rounds off the hard edges of CAD parts.
                obj.data.polygons.foreach_set("use_smooth", [False] * len(obj.data.polygons))
                obj.data.update()
            continue
        verts, faces, smooth = verts_faces
        mesh = bpy.data.meshes.new(obj.data.name + "_fine")
        mesh.from_pydata([tuple(v) for v in verts], [], faces)
        mesh.update()
        mesh.polygons.foreach_set("use_smooth", smooth)
        bm = bmesh.new()  # validate winding: normals point outward for these convex solids
        bm.from_mesh(mesh)
        bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
        bm.to_mesh(mesh)
        bm.free()
        mesh.polygons.foreach_set("use_smooth", smooth)
        old = obj.data
        obj.data = mesh
        if old.users == 0:
            bpy.data.meshes.remove(old)


def _axis_permute(points: np.ndarray, axis: str) -> np.ndarray:
    """Points built along +Z, turned to the USD ``axis`` token (X, Y or Z)."""
    if axis == "X":
        return points[:, [2, 0, 1]]
    if axis == "Y":
        return points[:, [1, 2, 0]]
    return points


def _has_normals(prim) -> bool:
    from pxr import UsdGeom

    mesh = UsdGeom.Mesh(prim)
    return bool(mesh.GetNormalsAttr().HasAuthoredValue() or UsdGeom.PrimvarsAPI(prim).HasPrimvar("normals"))


def _plane(half: float, axis: str):
    verts = _axis_permute(np.array([[-half, -half, 0.0], [half, -half, 0.0], [half, half, 0.0], [-half, half, 0.0]]), axis)
    return verts, [(0, 1, 2, 3)], [False]


def _capsule(radius: float, height: float, axis: str, segments: int = CURVED_SEGMENTS):
    """A UV sphere split at the equator and pulled apart by ``height`` (0: a sphere). All faces smooth."""
    rings = segments // 2 + 1  # odd: no vertex row on the equator, the band across it becomes the wall
    if rings % 2 == 0:
        rings += 1
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]  # interior latitude rows (from the north pole)
    verts = [np.array([0.0, 0.0, radius + height / 2])]
    for t in theta:
        z = radius * np.cos(t)
        z += height / 2 if z > 0 else -height / 2
        for p in phi:
            verts.append(np.array([radius * np.sin(t) * np.cos(p), radius * np.sin(t) * np.sin(p), z]))
    verts.append(np.array([0.0, 0.0, -radius - height / 2]))
    verts = _axis_permute(np.array(verts), axis)
    faces = []
    n_rows = len(theta)
    for j in range(segments):
        faces.append((0, 1 + j, 1 + (j + 1) % segments))
    for r in range(n_rows - 1):
        a, b = 1 + r * segments, 1 + (r + 1) * segments
        for j in range(segments):
            k = (j + 1) % segments
            faces.append((a + j, b + j, b + k, a + k))
    last = len(verts) - 1
    base = 1 + (n_rows - 1) * segments
    for j in range(segments):
        faces.append((base + (j + 1) % segments, base + j, last))
    return verts, faces, [True] * len(faces)


def _cylinder(radius: float, height: float, axis: str, segments: int = CURVED_SEGMENTS):
    """Capped cylinder; the wall is smooth-shaded, the caps flat."""
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(phi), radius * np.sin(phi)], axis=1)
    top = np.column_stack([ring, np.full(segments, height / 2)])
    bottom = np.column_stack([ring, np.full(segments, -height / 2)])
    verts = _axis_permute(np.vstack([top, bottom]), axis)
    faces = [tuple(range(segments)), tuple(range(2 * segments - 1, segments - 1, -1))]
    smooth = [False, False]
    for j in range(segments):
        k = (j + 1) % segments
        faces.append((j, segments + j, segments + k, k))
        smooth.append(True)
    return verts, faces, smooth


# ----------------------------------------------------------------------------------- materials
def _input_value(shader, name, default):
    inp = shader.GetInput(name)
    if not inp:
        return default, None
    source = inp.GetConnectedSource() if inp.HasConnectedSource() else None
    value = inp.Get()
    return (default if value is None else value), source


def _texture_file(source, base_dir: Path) -> str | None:
    """The file of a UsdUVTexture connected to an input, resolved to an absolute path (or None)."""
    from pxr import UsdShade

    connectable, _, _ = source
    tex = UsdShade.Shader(connectable.GetPrim())
    if tex.GetIdAttr().Get() != "UsdUVTexture":
        return None
    file_input = tex.GetInput("file")
    asset = file_input.Get() if file_input else None
    if asset is None:
        return None
    resolved = getattr(asset, "resolvedPath", "") or asset.path
    path = Path(resolved)
    if not path.is_absolute():
        path = base_dir / path
    return str(path)


def build_material(bpy, name: str, usd_material, base_dir: Path, display_color=None):
    """A Principled BSDF material from a UsdPreviewSurface (or a display colour when unbound)."""

    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF") or nodes.new("ShaderNodeBsdfPrincipled")
    out = nodes.get("Material Output") or nodes.new("ShaderNodeOutputMaterial")
    if not bsdf.outputs["BSDF"].links:
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    color, roughness, metallic, opacity = (0.8, 0.8, 0.8), 0.5, 0.0, 1.0
    shader = None
    if usd_material is not None:
        source = usd_material.ComputeSurfaceSource()[0]
        if source and source.GetIdAttr().Get() == "UsdPreviewSurface":
            shader = source
        elif source:
            log.warning("%s: surface shader %s is not UsdPreviewSurface; Cycles uses a grey diffuse", usd_material.GetPath(), source.GetIdAttr().Get())
    elif display_color is not None:
        color = tuple(display_color)
    if shader is not None:
        color, color_src = _input_value(shader, "diffuseColor", color)
        roughness, rough_src = _input_value(shader, "roughness", roughness)
        metallic, metal_src = _input_value(shader, "metallic", metallic)
        opacity, _ = _input_value(shader, "opacity", opacity)
        ior, _ = _input_value(shader, "ior", 1.5)
        bsdf.inputs["IOR"].default_value = float(ior)
        coat, _ = _input_value(shader, "clearcoat", 0.0)
        bsdf.inputs["Coat Weight"].default_value = float(coat)
        coat_rough, _ = _input_value(shader, "clearcoatRoughness", 0.01)
        bsdf.inputs["Coat Roughness"].default_value = float(coat_rough)
        emissive, _ = _input_value(shader, "emissiveColor", (0.0, 0.0, 0.0))
        if max(emissive) > 0:
            bsdf.inputs["Emission Color"].default_value = (*map(float, emissive), 1.0)
            bsdf.inputs["Emission Strength"].default_value = 1.0
        use_specular, _ = _input_value(shader, "useSpecularWorkflow", 0)
        if use_specular:
            log.warning("%s: specular workflow is mapped to metallic/roughness (specularColor ignored)", usd_material.GetPath())
        for name_in, src, socket, non_color in (
            ("diffuseColor", color_src, "Base Color", False),
            ("roughness", rough_src, "Roughness", True),
            ("metallic", metal_src, "Metallic", True),
        ):
            if src is not None:
                path = _texture_file(src, base_dir)
                if path is not None:
                    tex = _image_node(bpy, nodes, path, non_color)
                    links.new(tex.outputs["Color"], bsdf.inputs[socket])
        normal_value, normal_src = _input_value(shader, "normal", None)
        if normal_src is not None:
            path = _texture_file(normal_src, base_dir)
            if path is not None:
                tex = _image_node(bpy, nodes, path, True)
                nmap = nodes.new("ShaderNodeNormalMap")
                links.new(tex.outputs["Color"], nmap.inputs["Color"])
                links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Base Color"].default_value = (*map(float, color), 1.0)
    bsdf.inputs["Roughness"].default_value = float(roughness)
    bsdf.inputs["Metallic"].default_value = float(metallic)
    bsdf.inputs["Alpha"].default_value = float(opacity)
    return mat


def load_image(bpy, path: str):
    """A Blender image of ``path``; FileNotFoundError when the file is missing or not a readable image."""
    if not Path(path).is_file():
        raise FileNotFoundError(path)
    image = bpy.data.images.load(path, check_existing=True)
    if image.size[0] == 0 or image.size[1] == 0:  # Blender loads lazily and leaves an empty image on a bad file
        bpy.data.images.remove(image)
        raise FileNotFoundError(f"{path} (not a readable image)")
    return image


def _image_node(bpy, nodes, path: str, non_color: bool):
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = load_image(bpy, path)
    if non_color:
        tex.image.colorspace_settings.name = "Non-Color"
    return tex


def assign_materials(bpy, stage, objects: dict, base_dir: Path) -> dict[str, object]:
    """Bind a Cycles material to every imported mesh from its USD binding; returns {prim path: material}."""
    from pxr import UsdGeom, UsdShade

    by_usd: dict[str, object] = {}
    bound = {}
    for path, obj, prim in _meshes(stage, objects):
        usd_mat = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()[0]
        if usd_mat:
            key = str(usd_mat.GetPath())
            if key not in by_usd:
                by_usd[key] = build_material(bpy, key, usd_mat, base_dir)
            mat = by_usd[key]
        else:
            colors = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get() if UsdGeom.Gprim(prim) else None
            mat = build_material(bpy, path, None, base_dir, display_color=colors[0] if colors else None)
        obj.data.materials.clear()
        obj.data.materials.append(mat)
        bound[path] = mat
    return bound


def recolor(bpy, obj, base_material, rgb) -> None:
    """Give ``obj`` its own copy of its material with a new base colour (linear RGB)."""
    mat = obj.data.materials[0] if obj.data.materials else None
    if mat is None or mat is base_material:
        mat = base_material.copy()
        obj.data.materials.clear()
        obj.data.materials.append(mat)
    tint = mat.node_tree.nodes.get("vlatwin_tint")  # a textured material: the colour multiplies the image
    target = tint.inputs["A"] if tint is not None else mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    target.default_value = (*map(float, rgb), 1.0)


# -------------------------------------------------------------------------------------- lights
def read_lights(stage) -> list[ph.LightPhotometry]:
    """Every UsdLux light of the stage in photometric units (see :mod:`photometry`)."""
    from pxr import Usd, UsdGeom, UsdLux

    lights = []
    cache = UsdGeom.XformCache()
    base_dir = Path(stage.GetRootLayer().realPath or ".").parent
    for prim in stage.Traverse():
        if not prim.HasAPI(UsdLux.LightAPI):
            continue
        api = UsdLux.LightAPI(prim)
        if UsdGeom.Imageable(prim) and UsdGeom.Imageable(prim).ComputeVisibility(Usd.TimeCode.Default()) == UsdGeom.Tokens.invisible:
            continue
        luminance = float(api.GetIntensityAttr().Get() or 0.0) * 2.0 ** float(api.GetExposureAttr().Get() or 0.0)
        rgb = np.array(api.GetColorAttr().Get() or (1.0, 1.0, 1.0), dtype=float)
        if api.GetEnableColorTemperatureAttr().Get():
            rgb = rgb * ph.kelvin_to_rgb(float(api.GetColorTemperatureAttr().Get() or 6500.0))
        normalize = bool(api.GetNormalizeAttr().Get())
        T = np.array(cache.GetLocalToWorldTransform(prim)).T
        path = str(prim.GetPath())
        if prim.IsA(UsdLux.DistantLight):
            angle = float(UsdLux.DistantLight(prim).GetAngleAttr().Get() or 0.0)
            lights.append(ph.LightPhotometry("distant", path, T, rgb, luminance, ph.distant_illuminance(luminance, angle, normalize), angle))
        elif prim.IsA(UsdLux.DomeLight):
            tex_attr = UsdLux.DomeLight(prim).GetTextureFileAttr().Get()
            texture = None
            if tex_attr is not None and tex_attr.path:
                resolved = tex_attr.resolvedPath or tex_attr.path
                texture = str(resolved if Path(resolved).is_absolute() else base_dir / resolved)
            lights.append(ph.LightPhotometry("dome", path, T, rgb, luminance, texture=texture))
        elif prim.IsA(UsdLux.SphereLight):
            radius = float(UsdLux.SphereLight(prim).GetRadiusAttr().Get() or 0.5) * _scale(T)
            lum = luminance / ph.emitter_area("sphere", radius) if normalize else luminance
            lights.append(ph.LightPhotometry("sphere", path, T, rgb, lum, radius=radius))
        elif prim.IsA(UsdLux.RectLight):
            rect = UsdLux.RectLight(prim)
            w, h = float(rect.GetWidthAttr().Get() or 1.0), float(rect.GetHeightAttr().Get() or 1.0)
            if rect.GetTextureFileAttr().Get():
                log.warning("%s: rect light textures are not mapped; Cycles uses its mean colour", path)
            lum = luminance / ph.emitter_area("rect", width=w, height=h) if normalize else luminance
            lights.append(ph.LightPhotometry("rect", path, T, rgb, lum, width=w, height=h))
        elif prim.IsA(UsdLux.DiskLight):
            radius = float(UsdLux.DiskLight(prim).GetRadiusAttr().Get() or 0.5)
            lum = luminance / ph.emitter_area("disk", radius) if normalize else luminance
            lights.append(ph.LightPhotometry("disk", path, T, rgb, lum, radius=radius))
        elif prim.IsA(UsdLux.CylinderLight):
            cyl = UsdLux.CylinderLight(prim)
            radius, length = float(cyl.GetRadiusAttr().Get() or 0.5), float(cyl.GetLengthAttr().Get() or 1.0)
            lum = luminance / ph.emitter_area("cylinder", radius, width=length) if normalize else luminance
            log.warning("%s: Cycles has no cylinder light; using a point light of the same power", path)
            lights.append(ph.LightPhotometry("cylinder", path, T, rgb, lum, radius=radius, width=length))
        else:
            log.warning("%s: light type %s is not mapped to Cycles; skipped", path, prim.GetTypeName())
    return lights


def _scale(T: np.ndarray) -> float:
    return float(np.cbrt(abs(np.linalg.det(T[:3, :3])))) or 1.0


def add_light(bpy, light: ph.LightPhotometry, l_sat: float):
    """A Blender light object for one UsdLux light (the dome goes to the world instead: :func:`set_world`)."""
    from mathutils import Matrix

    kind = light.kind
    if kind == "distant":
        data = bpy.data.lights.new(light.path, "SUN")
        data.energy = ph.cycles_sun_strength(light.illuminance, l_sat)
        data.angle = np.deg2rad(light.angle_deg)
    elif kind in ("sphere", "cylinder"):
        data = bpy.data.lights.new(light.path, "POINT")
        if kind == "sphere":
            data.shadow_soft_size = light.radius
            data.energy = ph.cycles_point_power(light.luminance, light.radius, l_sat)
        else:  # same flux: a Lambertian cylinder side emits pi * L * area, a Cycles point light its power
            area = ph.emitter_area("cylinder", light.radius, width=light.width)
            data.shadow_soft_size = light.radius
            data.energy = np.pi * area * light.luminance / l_sat
    elif kind == "rect":
        data = bpy.data.lights.new(light.path, "AREA")
        data.shape = "RECTANGLE"
        data.size, data.size_y = light.width, light.height
        data.energy = ph.cycles_area_power(light.luminance, light.width * light.height, l_sat)
    elif kind == "disk":
        data = bpy.data.lights.new(light.path, "AREA")
        data.shape = "DISK"
        data.size = 2 * light.radius
        data.energy = ph.cycles_area_power(light.luminance, ph.emitter_area("disk", light.radius), l_sat)
    else:
        raise ValueError(kind)
    data.color = tuple(map(float, light.rgb))
    obj = bpy.data.objects.new(light.path, data)
    obj.matrix_world = Matrix(light.T_w_light.tolist())
    bpy.context.scene.collection.objects.link(obj)
    return obj


def set_world(bpy, dome: ph.LightPhotometry | None, l_sat: float) -> None:
    """World background: the dome light's colour (or HDRI lat-long image) at its luminance; black without one."""
    world = bpy.data.worlds.new("vlatwin_world")
    bpy.context.scene.world = world
    if world.node_tree is None:  # Blender < 5 creates the node tree on request
        world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes.get("Background") or nodes.new("ShaderNodeBackground")
    output = nodes.get("World Output") or nodes.new("ShaderNodeOutputWorld")
    links.new(background.outputs["Background"], output.inputs["Surface"])
    if dome is None:
        background.inputs["Strength"].default_value = 0.0
        return
    background.inputs["Color"].default_value = (*map(float, dome.rgb), 1.0)
    background.inputs["Strength"].default_value = ph.cycles_background_strength(dome.luminance, l_sat)
    if dome.texture:
        env = nodes.new("ShaderNodeTexEnvironment")
        env.image = load_image(bpy, dome.texture)
        tint = nodes.new("ShaderNodeMix")
        tint.data_type = "RGBA"
        tint.blend_type = "MULTIPLY"
        tint.inputs["Factor"].default_value = 1.0
        links.new(env.outputs["Color"], tint.inputs["A"])
        tint.inputs["B"].default_value = (*map(float, dome.rgb), 1.0)
        links.new(tint.outputs["Result"], background.inputs["Color"])
        # The image turns with the dome light's prim: look it up by the direction in the light's frame.
        from mathutils import Matrix

        mapping = nodes.new("ShaderNodeMapping")
        mapping.vector_type = "VECTOR"
        mapping.inputs["Rotation"].default_value = Matrix(dome.T_w_light[:3, :3].T.tolist()).to_euler("XYZ")
        coords = nodes.new("ShaderNodeTexCoord")
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], env.inputs["Vector"])


def texture(bpy, obj, base_material, image: np.ndarray, repeat: float, key: str) -> None:
    """Multiply ``obj``'s base colour by an sRGB image, box-projected in object space and tiled ``repeat`` times per metre.

    The raster camera projects along the shape's dominant axis (no UVs on primitives); box projection
    is Cycles' nearest equivalent.
    """
    name = f"vlatwin_tex_{key}_{image.shape[1]}x{image.shape[0]}_{hash(image.tobytes()) & 0xFFFFFFFF:08x}"
    img = bpy.data.images.get(name)
    if img is None:
        rgba = np.asarray(image, dtype=np.uint8)
        if rgba.shape[-1] == 3:
            rgba = np.concatenate([rgba, np.full(rgba.shape[:2] + (1,), 255, np.uint8)], axis=2)
        img = bpy.data.images.new(name, rgba.shape[1], rgba.shape[0], alpha=True)
        img.pixels.foreach_set((rgba[::-1].astype(np.float32) / 255.0).ravel())
        img.pack()
    mat = obj.data.materials[0] if obj.data.materials else None
    if mat is None or mat is base_material:
        mat = base_material.copy()
        obj.data.materials.clear()
        obj.data.materials.append(mat)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    tex = nodes.get("vlatwin_texture")
    if tex is None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = "vlatwin_texture"
        tex.projection = "BOX"
        tex.projection_blend = 0.2
        coords = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        mapping.name = "vlatwin_mapping"
        links.new(coords.outputs["Object"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        mix = nodes.new("ShaderNodeMix")
        mix.name = "vlatwin_tint"
        mix.data_type = "RGBA"
        mix.blend_type = "MULTIPLY"
        mix.inputs["Factor"].default_value = 1.0
        mix.inputs["A"].default_value = bsdf.inputs["Base Color"].default_value
        links.new(tex.outputs["Color"], mix.inputs["B"])
        links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    tex.image = img
    nodes["vlatwin_mapping"].inputs["Scale"].default_value = (repeat, repeat, repeat)
