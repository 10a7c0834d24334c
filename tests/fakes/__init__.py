"""Fake servers on 127.0.0.1 for what cannot run here for real (Telegram, Slack, a model
provider) and a recording webhook target; each is a :class:`tests.fakes.base.LoopbackServer`.
Tests and benchmarks both use them."""
