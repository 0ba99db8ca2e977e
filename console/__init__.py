"""The operator console: advocates' queues and cases, supervisors' dashboard, analysts' statistics."""
