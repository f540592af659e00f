"""One package per database. Each declares its source and/or target side as data (``SOURCE``, ``TARGET``:
:class:`turnout.ports.SourceAdapter`, :class:`turnout.ports.TargetAdapter`); :mod:`turnout.routes` pairs them."""
