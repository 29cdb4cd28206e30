"""The checker: turns a recorded history into a verdict with evidence.

``check_run(run_dir)`` writes results.json; ``check_op(op)`` judges one reply online.
"""
from sessionstorm.checker.catalogue import CATALOGUE, CODES
from sessionstorm.checker.online import check_op
from sessionstorm.checker.run import check_run, compose, exit_code

__all__ = ["CATALOGUE", "CODES", "check_op", "check_run", "compose", "exit_code"]
