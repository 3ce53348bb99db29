"""The rate limiter shared by every process of an account, through Redis.

Importing this package needs redis-py (the ``redis`` extra): the core package imports it on
first use of ``RedisRateLimiter``. How it works: the README, "How the shared limiter works".
"""

from ._limiter import RedisRateLimiter

__all__ = ["RedisRateLimiter"]
