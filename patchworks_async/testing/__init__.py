"""Test helpers for code that talks to Patchworks: a faithful fake server.

``FakePatchworks`` serves the documented Patchworks API (auth, flows, start and manual
initialise, Laravel's throttle, error bodies) on loopback over real sockets, with switches
to inject the failures a client must survive and to hold requests or replies until a test
lets them go. It depends only on aiohttp and attrs, so it can be used from any test suite,
with or without the client in this package.
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
