"""DynamoDB storage: the one package that knows the table's keys, indexes and item shapes.

- `keys`: the key schema, every key and index-key format written once;
- `items`: each resource to its item and back;
- `codec`: attribute values, and DynamoDB's errors as the service's;
- `table`: the requests every repository makes of the table;
- `unit`: the unit of work, the one place transactions are made;
- `organisations`, `configs`, `events`: a repository per aggregate;
- `lists` (with `planning`, pure, and `merge`): list pages; `overdue`: the sweep's queries;
- `routing`: what routes an event, kept a few seconds per store;
- `store`: the repositories of one table, made together.
"""
