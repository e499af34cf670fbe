"""Garbage-collector settings for a serving process.

A Bundle of a few hundred resources parses into hundreds of thousands of dicts and lists, and
with CPython's default thresholds (a young collection every 700 allocations, a full one every
100 young ones) the collector ran dozens of times per Bundle and walked the whole heap, model
and search definitions included, on each full pass: about a fifth of the ingest CPU. Almost
nothing the server allocates per request forms reference cycles (parsed JSON is a tree), so
collecting less often frees the same memory later, not never.
"""

from __future__ import annotations

import gc

# Young generation: collected every 20,000 net allocations instead of 700; the older two
# only after 50 and 100 passes of the one below.
THRESHOLDS = (20_000, 50, 100)


def tune_for_serving() -> None:
    """Call once the app is built, when everything long-lived (model, definitions, routes) exists.

    ``gc.freeze`` moves what exists now into a permanent generation the collector never scans
    again, so a full collection costs what the requests in flight allocated, not the whole
    process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
