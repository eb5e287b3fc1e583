"""Evaluation runs: a policy on tasks, episode by episode, from fixed initial states.

``runner`` (``vlatwin eval``), ``setup`` (task config -> simulator + policy context), ``stats`` (Wilson
intervals, latency, SimplerEnv's MMRV and Pearson r), ``video`` (annotated episode MP4s), ``compare``
(``vlatwin eval compare``); the HTML report lives in :mod:`vlatwin.report`.
"""
