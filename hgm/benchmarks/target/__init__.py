"""Targets: your own program, evolved against your own scorer (`hgm run --target DIR`).

A node is a version of the target directory; a task is one case of target.yaml (spec.py). An
evaluation (benchmark.py) runs the target's entry command on the case in the run's sandbox, in a
fresh copy of the node's directory, without the hidden data, the network or keys; then the trusted
scorer, in a sandbox of its own, reads only the declared outputs and the hidden data and prints
one JSON result, which the score rule turns into a fractional success or solved / failed.
"""
