.PHONY: install test lint format demo

install:
	pip install -c constraints.txt -e ".[dev]"

test:
	python -m pytest

lint:
	ruff check src tests
	ruff format --check src tests

format:
	ruff check --fix src tests
	ruff format src tests

demo:
	voxlm demo
