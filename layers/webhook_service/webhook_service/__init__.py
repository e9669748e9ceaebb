"""Shared package of the webhook service: domain rules, storage, queue, HTTP mapping and auth."""

__version__ = "0.1.0"
PRODUCT = "ricloud-webhooks"
USER_AGENT = f"{PRODUCT}/{__version__}"
