"""`locust -f locustfiles/conversation.py`: see README.md. With no --host, starts the embedded
stack and the reference gateway (bugs from SESSIONSTORM_TARGET_BUGS)."""
from sessionstorm import ConversationUser  # noqa: F401
