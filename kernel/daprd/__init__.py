"""``pydaprd``: the sidecar process (flags -> Options -> Runtime)."""
