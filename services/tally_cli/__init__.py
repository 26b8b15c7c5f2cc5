"""One command line for every job: run, serve one service, replay, topics, benchmarks."""
