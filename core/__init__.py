"""The base package: errors, the atomic writer, typed configs and figure helpers. It imports nothing else of the
project; synthetic/, net/, analysis/, report/ and the stages (pipeline/) build on it."""
