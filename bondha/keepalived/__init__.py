"""keepalived's side of the pair: its events, and the keepalived.conf bondha renders and checks.

:mod:`.events` (notify arguments and FIFO lines into events and roles) is pure, as are
:mod:`.render` and :mod:`.parse`; :mod:`.check` also looks at the files a config names.
"""
