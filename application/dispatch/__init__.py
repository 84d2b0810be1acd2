"""Dispatch: a due call's attempt, from the timer to the recorded outcome.

Everything here runs in a worker process. ``Workers`` (workers.py) starts two loops, each on
a thread of its own, and wires them together; every write goes through ``ServiceCalls``, the
one writer of events::

    timer thread                      execution-loop thread (asyncio)        PostgreSQL
    ------------                      -------------------------------        ----------
    Timer.run_once (timer.py)
      outbox.claim(START) ------------------------------------------------> leased rows
      ... until due - prestart
      ServiceCalls.start_due --------------------------------------------> Started + execute
      hand_off(attempts) --call_soon_threadsafe-->  ExecutionLoop.accept        (leased here)
                                                     sleep until due_at
                                                     HttpSender.send  -------> the target
                                                     results queue, linger
                                                     to_thread(ServiceCalls.finish_attempts)
                                                       ServiceCalls.record_outcomes
                                                         decide (policy, circuits) ->
                                                                  Execution + call events,
                                                                  next start, execute gone
                                                                  NOTIFY slot_freed

Two thread crossings, both drawn: the timer hands its early starts to the loop with
``call_soon_threadsafe``; the loop runs each database step with ``asyncio.to_thread`` (the
event store is blocking). Calls nobody started early (another worker's, or one whose lease
ended) reach the same loop through ``outbox.claim(EXECUTE)`` and
``ServiceCalls.begin_attempts``. With deferred starts (``DUECALL_RECORD_RUNNING_AFTER_SECONDS``
above 0) ``start_due`` records nothing for a first claim: the call's ``Started`` goes into the
outcome's transaction, or ``record_running`` records it once the request has been out that
long. ``batching.py`` retries a batch that meets a write conflict from fresh state, then item
by item.
"""
