"""Port-block logs a datapath emits, beside the plans.

`events` holds the one shape every format's parser produces; the parsers live in `formats`.
Nothing here touches the store: parsing is pure, so it is tested line by line.
"""
