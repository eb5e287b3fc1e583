"""USD authoring and checking with pxr (``pip install 'vlatwin[usd]'``; inside Isaac Sim, Kit's pxr).

Authoring functions take the stage explicitly (``spawn_*(stage, path, ...)``) and never start Kit.
"""
