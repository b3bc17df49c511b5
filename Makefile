.PHONY: install test lint format demo

install:
	pip install -c constraints.txt -e ".[dev,real]"

test:
	python -m pytest

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

format:
	ruff check --fix src tests benchmarks
	ruff format src tests benchmarks

demo:
	voxlm demo
