.PHONY: install demo up test lint

install:
	bash scripts/install.sh

# Installs, then shows the whole loop on a real model (a few minutes on 2 CPU cores).
demo: install
	.venv/bin/vera-registry demo

# Installs, then runs the registry on this machine until Ctrl-C.
up: install
	.venv/bin/vera-registry up

# Installs, starts PostgreSQL and Redis where they are down, runs the whole suite.
test: install
	bash scripts/services.sh
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
