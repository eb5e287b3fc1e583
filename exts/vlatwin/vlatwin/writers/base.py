"""Writer interface: turn one frame's annotator outputs into files (bytes), no I/O of its own."""

from __future__ import annotations

import abc
from pathlib import Path


class DatasetWriter(abc.ABC):
    """A dataset format.

    ``encode_frame`` returns ``{relative path: bytes}``; the pipeline writes them atomically off the
    simulation thread and records them in the manifest. ``finalize`` returns files built from all
    finished frames (e.g. a COCO JSON), so it can run again after a resume.
    """

    name: str = "base"
    #: annotators this writer needs from the renderer
    required_annotators: frozenset[str] = frozenset()

    def __init__(self, root: Path, cameras: list[str], annotators: set[str], *, frame_padding: int = 4):
        self.root = Path(root)
        self.cameras = list(cameras)
        self.annotators = set(annotators)
        self.frame_padding = frame_padding

    def frame_tag(self, frame: int) -> str:
        return f"{frame:0{self.frame_padding}d}"

    @abc.abstractmethod
    def encode_frame(self, frame: int, outputs_by_camera: dict[str, dict]) -> dict[str, bytes]:
        """Files for one frame (all cameras)."""

    def finalize(self, finished_frames: list[int]) -> dict[str, bytes]:
        """Files assembled from all finished frames (default: none)."""
        return {}

    def start(self) -> dict[str, bytes]:
        """Files written once at the start (default: none)."""
        return {}
