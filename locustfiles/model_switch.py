"""`locust -f locustfiles/model_switch.py`: see README.md. With no --host, starts the embedded
stack and the reference gateway (bugs from SESSIONSTORM_TARGET_BUGS)."""
from sessionstorm import ModelSwitchUser  # noqa: F401
