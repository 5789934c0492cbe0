"""The bonder's own side: what runs on a bonder between keepalived and the reconcile.

:mod:`.statedir` (the node's lock and its newest event, in keepalived's order of emission:
:mod:`.forkorder`), :mod:`.transition` (one keepalived event into one reconcile),
:mod:`.daemon` (following notify_fifo) with :mod:`.warm` (its connections kept open between
events), :mod:`.announce` (telling the customer's LAN that a moved connected IP lives here),
and the records:
:mod:`.journal`, :mod:`.metrics`, :mod:`.publish` (both after each record) and
:mod:`.history` (``status --local``). :mod:`bondha.securepath` checks that no other user can
swap the state directory or the FIFO.
"""
