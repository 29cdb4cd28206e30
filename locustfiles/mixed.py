"""`locust -f locustfiles/mixed.py`: every scenario, weighted; the soak profile."""
from sessionstorm import ConversationUser, ModelSwitchUser, ObserveUser, SharedKeyStreamUser, SharedKeyUser


class Teams(SharedKeyUser):
    weight = 4


class TeamsStreaming(SharedKeyStreamUser):
    weight = 2


class Switchers(ModelSwitchUser):
    weight = 1


class Observers(ObserveUser):
    weight = 2


class Chatters(ConversationUser):
    weight = 2
