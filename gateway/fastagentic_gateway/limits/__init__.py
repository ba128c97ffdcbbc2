"""Limits: the second stage of the request pipeline (authenticate -> authorize -> limit -> hooks)."""
