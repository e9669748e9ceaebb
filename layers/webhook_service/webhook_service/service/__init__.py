"""The API's use cases: each takes the services, the caller and validated input, and returns
a resource. They tie the domain's rules to the repositories and the queue, and know nothing
of HTTP.

- `context`: `Services`, what the use cases need;
- `configs`: webhook configs (create, read, list, update, deactivate, test, rotate);
- `tasks`: test tasks; `events`: events, their attempts, resend;
- `tenants`: the calling key, a key's config, the organisation and its default.
"""
