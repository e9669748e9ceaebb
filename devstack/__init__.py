"""The local stack: the template's functions served over HTTP and SQS on an embedded moto."""
