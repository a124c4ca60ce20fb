"""The web console: static ES modules served at /ui by the API process itself."""
