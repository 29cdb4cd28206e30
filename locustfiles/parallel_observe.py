"""`locust -f locustfiles/parallel_observe.py`: see README.md. With no --host, starts the embedded
stack and the reference gateway (bugs from SESSIONSTORM_TARGET_BUGS)."""
from sessionstorm import ObserveUser  # noqa: F401
