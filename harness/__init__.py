"""The harness that the tests, scripts/bench.py and scripts/chaos.py share.

- ``databases``: databases of their own on a server, and embedded PostgreSQL servers that a
  run starts, stops and restarts;
- ``processes``: `duecall` processes started as a user starts them (command line,
  environment, log file, waiting until they answer, stopping), and ``Processes``, the group
  of them that a run starts and stops together;
- ``duecall_process`` and ``worker_processes``: a `duecall serve` / `duecall api` process and
  `duecall worker` processes as tests use them (context manager, fixture);
- ``api_keys``: tenants and their API keys, through the admin API;
- local HTTP targets: ``target_server`` (threaded, in the test's own process, scriptable by
  path), ``recording_target`` (asyncio, in a process of its own, for load and faults: bench
  and chaos) and ``raw_target`` (records the exact bytes it receives);
- ``network``: loopback host, free ports.

The scripts put the repository root on ``sys.path`` (scripts/_harness.py); pytest does (the
root holds the ``tests`` package).
"""
