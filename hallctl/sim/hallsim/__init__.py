"""hallsim: a discrete-event simulator of a service hall that drives the real central core.

* :mod:`.scenario`: demand (scenario "xiaoshan-base": arrivals, blocks, service times);
* :mod:`.layouts`: the hall layouts of issue 3 as ``HallSpec`` builders;
* :mod:`.engine`: one simulated business day (:class:`~.engine.HallDay`);
* :mod:`.metrics`: wait statistics over replicated days;
* :mod:`.run`: replications over (layout, policy, mix), common random numbers, worker processes;
* :mod:`.crosscheck`: validation against Erlang C and the ``ciw`` library.

Run ``bench/assignment.py`` for the figures. Nothing here does I/O at import time.
"""
