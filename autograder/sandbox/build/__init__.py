"""Building the docker backend's image (and checking the engine): tools, not the runtime."""
