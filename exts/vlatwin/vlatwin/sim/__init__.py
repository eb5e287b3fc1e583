"""Simulator backends behind one seam (:class:`vlatwin.sim.base.SimBackend`).

``newton`` is the embedded default (Newton/Warp, CPU here, GPU where Warp sees one); ``isaacsim``
(PhysX + RTX inside Isaac Sim) comes as its own module. Use :func:`vlatwin.sim.factory.make_backend`.
"""
