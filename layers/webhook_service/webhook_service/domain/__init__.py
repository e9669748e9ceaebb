"""The domain: the service's values and rules, pure (no HTTP, no event shapes, no boto3).

- `ids`: resource ids;
- `configs`: webhook configs and their test tasks (states, versions, updates, rotation);
- `events`: events, their attempts, publishing and resend rules;
- `retries`: when an event's next attempt is due;
- `redaction`: which fields of published data are secret-like and dropped;
- `tenants`: organisations, their keys, and who is calling;
- `queries`: what a list asks for and what a page holds; what the sweep finds overdue;
- `delivery`: what a receiver did with one delivery.
"""
