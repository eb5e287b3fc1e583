"""A scripted joint-space excitation: multi-sine motion around the start pose (``--policy excite``).

Twin-fidelity benchmarks and system identification need a motion that exercises every arm joint over a
range of speeds, is smooth (no step the safety monitor would clip) and is the same on every run. Each arm
joint j follows ``q0_j + A * sum_k sin(2 pi f_k t + phi_jk) / K`` with frequencies ``f_k`` spread between
``0.5 / period`` and ``2 / period`` and phases drawn once from the seed; the gripper dimension stays open.
Actions are absolute joint position targets (``joint_pos``), one per control step.

``sequential > 0`` moves one joint at a time instead: joint j is excited during its own ``sequential``
seconds (cycling through the arm joints), under a sin^2 envelope that starts and ends at rest. System
identification prefers it on XPBD: when all joints move together, the Panda twin's unloaded joints wander
by ~0.1 mrad for a 0.01 % change of any parameter (the solver, not the robot, is that sensitive), which
drowns the parameters' own effect; one joint at a time, the same change moves them by ~0.001 mrad.
"""

from __future__ import annotations

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import Policy, PolicyInfo


class ExcitationPolicy(Policy):
    """Multi-sine joint targets around the first observed pose (see the module docstring).

    Args:
        spec: the ``joint_pos`` controller's ActionSpec (arm joints, then one gripper value).
        control_hz: control rate [Hz] (time = step / control_hz).
        amplitude: peak offset per joint [rad] (before the 1/K averaging of the sines).
        period: slowest component's period [s].
        components: sines per joint (K).
        seed: phases.
    """

    def __init__(self, spec, *, control_hz: float, amplitude: float = 0.25, period: float = 4.0, components: int = 3, seed: int = 0,
                 sequential: float = 0.0):
        if not (np.isfinite(amplitude) and 0 <= amplitude <= 1.5):
            raise VlatwinError(f"excite: amplitude must be in [0, 1.5] rad, got {amplitude}")
        if not (np.isfinite(period) and 0.2 <= period <= 600):
            raise VlatwinError(f"excite: period must be in [0.2, 600] s, got {period}")
        if not 1 <= components <= 16:
            raise VlatwinError(f"excite: components must be in 1..16, got {components}")
        if not (np.isfinite(sequential) and (sequential == 0 or 0.5 <= sequential <= 600)):
            raise VlatwinError(f"excite: sequential must be 0 (all joints at once) or a segment length in [0.5, 600] s, got {sequential}")
        self.sequential = float(sequential)
        self.spec = spec
        self.control_hz = float(control_hz)
        self.amplitude, self.period, self.components = float(amplitude), float(period), int(components)
        rng = np.random.default_rng([int(seed), 7])
        self.n_arm = spec.dim - 1 if spec.names and spec.names[-1] == "gripper" else spec.dim
        self.freqs = np.linspace(0.5, 2.0, self.components) / self.period
        self.phases = rng.uniform(0, 2 * np.pi, size=(self.n_arm, self.components))
        self.info = PolicyInfo(name="excite", action_space="joint_pos", control_hz=self.control_hz)
        self._q0 = None
        self._k = 0

    def reset(self, episode: int | None = None) -> None:
        self._q0 = None
        self._k = 0

    def targets_at(self, t: float) -> np.ndarray:
        """Arm offsets from the start pose at time ``t`` [s] (zero at t = 0)."""
        waves = np.sin(2 * np.pi * self.freqs[None, :] * t + self.phases) - np.sin(self.phases)
        if self.sequential > 0:
            seg = self.sequential
            active = int(t // seg) % self.n_arm
            local = t - seg * np.floor(t / seg)
            out = np.zeros(self.n_arm)
            # Frequencies scaled to the segment: the slowest component makes one cycle per segment.
            f = np.linspace(1.0, 4.0, self.components) / seg
            wave = np.sin(2 * np.pi * f * local + self.phases[active]).mean()
            out[active] = self.amplitude * np.sin(np.pi * local / seg) ** 2 * wave
            return out
        return self.amplitude * waves.mean(axis=1)

    def act(self, observation) -> np.ndarray:
        if self._q0 is None:
            self._q0 = np.asarray(observation.state.joint_q, float)[: self.n_arm].copy()
        t = self._k / self.control_hz
        self._k += 1
        arm = self._q0 + self.targets_at(t)
        low, high = np.asarray(self.spec.low, float)[: self.n_arm], np.asarray(self.spec.high, float)[: self.n_arm]
        arm = np.clip(arm, low + 0.1, high - 0.1)
        return np.r_[arm, np.zeros(self.spec.dim - self.n_arm)]


def from_spec(target: str, options: dict, context):
    from vlatwin.policy.factory import take_options

    opts = take_options(options, {"amplitude": 0.25, "period": 4.0, "components": 3, "sequential": 0.0}, "--policy excite")
    if context.make_spec is None:
        raise VlatwinError("policy 'excite' needs the scene's joint_pos controller (its joints and limits)")
    hz = context.control_hz or 20.0
    return ExcitationPolicy(context.make_spec("joint_pos"), control_hz=hz, seed=context.seed, **opts)
