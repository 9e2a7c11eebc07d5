"""The git layer: the only place a git process is started."""
