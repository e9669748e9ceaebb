"""The deliver function's use cases: run a config's test task, and deliver an event with
retries (docs/design.md §6-§7, docs/isolation.md).

- `deliverer`: what the jobs need (`Deliverer`), how a job ended (`Outcome`), and what the
  lanes decide (move a job to the slow lane, mark an endpoint slow);
- `config_tests`: a config's test task, to its end;
- `event_attempts`: one attempt of an event's delivery, and the next one queued;
- `dispatch`: a queue message read and run as one of those.

A receiver's failure is an outcome to record, never an exception. Only our own failures
(storage, the queue) raise, so that SQS delivers the job again.
"""
