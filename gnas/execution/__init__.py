"""Where evaluations run: in process, or on a pool of Ray actors (the only Ray code)."""
