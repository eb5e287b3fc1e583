"""``vlatwin record`` (demonstrations -> LeRobotDataset v3.0) and ``vlatwin replay`` (re-simulate an episode)."""

from vlatwin.record.recorder import POLICIES, TASKS, RecordResult, make_policy, record, register_policy, register_task
from vlatwin.record.replay import ReplayResult, replay

__all__ = [
    "POLICIES",
    "TASKS",
    "RecordResult",
    "ReplayResult",
    "make_policy",
    "record",
    "register_policy",
    "register_task",
    "replay",
]
