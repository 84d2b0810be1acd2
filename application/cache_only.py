"""Answering from a cache only: what an asyncio caller asks first, to stay off its threads."""


class NotCachedError(Exception):
    """The answer is not cached (or is stale): it needs a database read. An async caller
    asks again off its event loop (in a thread), where blocking is allowed."""
