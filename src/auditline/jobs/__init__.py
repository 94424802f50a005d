"""Background work: one queue interface with SQS semantics over PostgreSQL or Amazon SQS,
the visible jobs, the worker, the periodic scheduler, and process upkeep.

The contract for the rest of the service is :class:`~auditline.jobs.service.Jobs`
(``submit``) and the handler shape (:data:`~auditline.jobs.service.Handler`, taking a
:class:`~auditline.jobs.service.JobContext`); handlers and schedules are registered at the
composition root (``auditline.tasks``), so nothing below it imports the worker.
"""
