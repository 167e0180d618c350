"""Game rules as a separate process: the frame protocol, the authors' SDK, the sandbox."""
