"""Window panels. Each panel is one collapsable section (the Twin panel lives in ``twin_panel.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import omni.kit.app
import omni.ui as ui
import omni.usd

from vlatwin.ui.twin_panel import TwinPanel


class ScenePanel:
    """Choose a config, build its USD stage and open it in the current stage."""

    title = "Scene"

    def __init__(self, state: dict):
        self.state = state

    def build(self) -> None:
        with ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label("Config", width=90)
                self.config_field = ui.StringField()
                self.config_field.model.set_value(self.state.get("config", ""))
            with ui.HStack(height=22):
                ui.Label("Stage out", width=90)
                self.out_field = ui.StringField()
                self.out_field.model.set_value(self.state.get("stage_out", "out/scene.usda"))
            ui.Button("Build and open stage", height=26, clicked_fn=self._build_and_open)
            self.status = ui.Label("", word_wrap=True)

    def _build_and_open(self) -> None:
        from vlatwin.config.loader import load_config
        from vlatwin.errors import VlatwinError
        from vlatwin.usd.scene_builder import write_scene

        try:
            config = load_config(self.config_field.model.get_value_as_string())
            out = write_scene(config.scene, Path(self.out_field.model.get_value_as_string()))
        except VlatwinError as exc:
            self.status.text = f"error: {exc}"
            return
        omni.usd.get_context().open_stage(str(out))
        self.state["config"] = self.config_field.model.get_value_as_string()
        self.status.text = f"opened {out}"


class CameraPanel:
    """Look through one of the scene's cameras in the active viewport."""

    title = "Camera preview"

    def __init__(self, state: dict):
        self.state = state

    def build(self) -> None:
        with ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label("Camera prim", width=90)
                self.camera_field = ui.StringField()
                self.camera_field.model.set_value("/World/Cameras/front")
            ui.Button("Look through camera", height=26, clicked_fn=self._look_through)

    def _look_through(self) -> None:
        from omni.kit.viewport.utility import get_active_viewport

        viewport = get_active_viewport()
        if viewport is not None:
            viewport.camera_path = self.camera_field.model.get_value_as_string()


class DatasetPanel:
    """Run N frames of synthetic data into a folder, with progress and cancel."""

    title = "Synthetic data"

    def __init__(self, state: dict):
        self.state = state
        self._task: asyncio.Task | None = None
        self._cancel = False

    def build(self) -> None:
        with ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label("Output", width=90)
                self.out_field = ui.StringField()
                self.out_field.model.set_value("out/dataset")
            with ui.HStack(height=22):
                ui.Label("Frames", width=90)
                self.frames_field = ui.IntField()
                self.frames_field.model.set_value(20)
            with ui.HStack(height=26, spacing=4):
                ui.Button("Generate", clicked_fn=self._start)
                ui.Button("Cancel", clicked_fn=self._request_cancel)
            self.progress = ui.ProgressBar(height=16)
            self.status = ui.Label("", word_wrap=True)

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._cancel = False
        self._task = asyncio.ensure_future(self._run())

    def _request_cancel(self) -> None:
        self._cancel = True

    async def _run(self) -> None:
        """Render frame by frame inside Kit's event loop with the async Kit calls, yielding between frames."""
        from vlatwin.errors import VlatwinError

        out = Path(self.out_field.model.get_value_as_string())
        total = self.frames_field.model.get_value_as_int()
        try:
            done = await run_dataset_job(self.state, out, total, self._progress, lambda: self._cancel)
        except VlatwinError as exc:
            self.status.text = f"error: {exc}"
            return
        self.status.text = (
            f"cancelled at {done} / {total} frames (Generate again continues the run)" if self._cancel else f"done: {total} frames in {out}"
        )

    def _progress(self, done: int, total: int, out) -> None:
        self.progress.model.set_value(done / total)
        self.status.text = f"{done} / {total} frames in {out}"


async def run_dataset_job(state: dict, out: Path, total: int, progress, cancelled) -> int:
    """The window's dataset job, all Kit work awaited on Kit's loop: ``DatasetRun.create_async``
    (``World.initialize_simulation_context_async`` + ``reset_async``), ``step_async`` per frame
    (``rep.orchestrator.step_async``), ``finalize_async`` (``wait_until_complete_async``). Returns frames done."""
    from vlatwin.sdg.pipeline import DatasetRun

    app = omni.kit.app.get_app()
    kit_settings = {k: state[k] for k in ("rt_subframes", "warmup_updates") if k in state}
    job = await DatasetRun.create_async(state.get("config", ""), out, frames=total, resume=out.exists(), kit_settings=kit_settings)
    done = job.frames_skipped
    try:
        while not cancelled() and await job.step_async() is not None:
            done += 1
            progress(done, total, out)
            await app.next_update_async()
    finally:
        await job.finalize_async()
    return done


PANELS = (ScenePanel, CameraPanel, DatasetPanel, TwinPanel)
