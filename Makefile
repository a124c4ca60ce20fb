.PHONY: install test lint

install:
	bash scripts/install.sh

# Installs, starts PostgreSQL and Redis where they are down, runs the whole suite.
test: install
	bash scripts/services.sh
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
