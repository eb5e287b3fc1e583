"""UsdPreviewSurface materials with UsdPhysics friction, bound to geometry."""

from __future__ import annotations

from vlatwin.usd.stage import round_authored

LOOKS_PATH = "/World/Looks"


def define_material(stage, name: str, cfg, *, looks_path: str = LOOKS_PATH):
    """Author ``<looks_path>/<name>`` from a :class:`MaterialCfg`; returns the UsdShade.Material.

    Values go through :func:`round_authored`, so colours computed upstream author the same text everywhere.
    """
    from pxr import Gf, Sdf, UsdPhysics, UsdShade

    material = UsdShade.Material.Define(stage, f"{looks_path}/{name}")
    shader = UsdShade.Shader.Define(stage, f"{looks_path}/{name}/PreviewSurface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*round_authored(cfg.color)))
    shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(round_authored(cfg.roughness))
    shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(round_authored(cfg.metallic))
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    if getattr(cfg, "reflectivity", None) is not None:
        material.GetPrim().CreateAttribute("vlatwin:reflectivity", Sdf.ValueTypeNames.Float, custom=True).Set(round_authored(cfg.reflectivity))
    physics = UsdPhysics.MaterialAPI.Apply(material.GetPrim())
    physics.CreateStaticFrictionAttr(round_authored(cfg.static_friction))
    physics.CreateDynamicFrictionAttr(round_authored(cfg.dynamic_friction))
    physics.CreateRestitutionAttr(round_authored(cfg.restitution))
    return material


def bind_material(prim, material, color) -> None:
    """Bind ``material`` for rendering and physics, and mirror its colour into ``displayColor``."""
    from pxr import Gf, UsdGeom, UsdShade

    binding = UsdShade.MaterialBindingAPI.Apply(prim)
    binding.Bind(material)
    binding.Bind(material, UsdShade.Tokens.weakerThanDescendants, "physics")
    gprim = UsdGeom.Gprim(prim)
    if gprim:
        gprim.CreateDisplayColorAttr([Gf.Vec3f(*round_authored(color))])
