"""The ``vlatwin`` command line."""
