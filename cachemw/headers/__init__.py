"""Cache-Control policies, ETags and conditional requests for ASGI apps.

`HeadersMiddleware` does the work; `cache_policy` and `condition` let a route say what it
wants. FastAPI users import the dependency flavours from `cachemw.headers.fastapi`.
"""

from cachemw.headers.middleware import HeadersMiddleware
from cachemw.headers.routes import cache_policy, condition
from cachemw.http.policy import CachePolicy

__all__ = ["CachePolicy", "HeadersMiddleware", "cache_policy", "condition"]
