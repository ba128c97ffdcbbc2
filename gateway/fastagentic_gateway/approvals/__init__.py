"""Approval channels: people told when a run waits for input, answering it with one-time signed links.

- ``config``: the channel and rule tables of the settings.
- ``tokens``: the signed answer links (bound to a run, the interrupt's request, a decision and an expiry).
- ``channels``: delivery (a signed JSON webhook, a Slack incoming webhook, email over SMTP), with retries.
- ``service``: ``Approvals``, told by the run machinery when a run starts waiting; it notifies, answers
  links through ``RunService.resume`` and applies the rules' timeouts in a periodic sweep.
- ``routes``: ``GET`` / ``POST /v1/approvals/{token}``.

This module imports nothing: the settings import ``config`` from here.
"""
