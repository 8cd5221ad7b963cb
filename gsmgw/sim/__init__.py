"""gsmgw.sim: simulated GSM modems on pseudo-terminals and the network between them.

Used by the tests, `gsmgw simulate` and `gsmgw run --simulate`.  It may import
only `gsmgw.sms` (the codec) from gsmgw.  See docs/DEVELOPING.md for the API.
"""

from gsmgw.sim.identity import identity_for
from gsmgw.sim.network import ModemInfo, SimError, SimNetwork

__all__ = ["ModemInfo", "SimError", "SimNetwork", "identity_for"]
