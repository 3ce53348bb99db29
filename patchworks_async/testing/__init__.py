"""Test helpers for code that talks to Patchworks: a faithful fake server.

``FakePatchworks`` serves the documented Patchworks API (auth, flows and versions, standard
and raw starts that queue, runs with their logs, payloads and retries, lookups, Laravel's
lists and throttle, error bodies) on loopback over real sockets, with switches for what
the documentation leaves open, switches to inject the failures a client must survive, and
holds that keep requests or replies until a test lets them go. It depends only on aiohttp
and attrs, so it can be used from any test suite, with or without the client in this
package.
"""

from ._fake import FakePatchworks, ServiceURLs
from ._faults import Fault
from ._holds import ReplyHold
from ._process import RemoteFake, fake_patchworks_process
from ._records import ReceivedRequest, StartedRun

__all__ = [
    "FakePatchworks",
    "Fault",
    "ReceivedRequest",
    "RemoteFake",
    "ReplyHold",
    "ServiceURLs",
    "StartedRun",
    "fake_patchworks_process",
]
