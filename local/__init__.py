"""MemeGen on one machine, no cloud account: the storage emulator, both functions and an event bridge (``make run``)."""
