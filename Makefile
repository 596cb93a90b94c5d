# Two commands set up a fresh machine:  make demo   and   make test
.PHONY: demo test setup lint

demo:
	scripts/setup.sh
	.venv/bin/sentinel demo

test:
	scripts/check.sh

lint:
	.venv/bin/ruff format sentinel tests scripts benchmarks
	.venv/bin/ruff check --fix sentinel tests scripts benchmarks
