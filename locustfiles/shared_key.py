"""`locust -f locustfiles/shared_key.py`: see README.md. With no --host, starts the embedded
stack and the reference gateway (bugs from SESSIONSTORM_TARGET_BUGS)."""
from sessionstorm import SharedKeyUser  # noqa: F401
