"""nsnet's firewall: NAT, published ports and isolation in nftables tables of its own.

``ruleset`` renders the tables as libnftables JSON (pure functions, no root); ``nft`` applies
them (``Firewall``) and flushes conntrack entries; ``ports`` parses ``-p`` specs and finds
free or held host ports. The firewall knows nothing of the engine: it takes ``BridgeNetwork``
and ``Binding`` values.
"""

from nsnet.firewall.nft import Firewall, FirewallState
from nsnet.firewall.ruleset import Binding, BridgeNetwork

__all__ = ["Binding", "BridgeNetwork", "Firewall", "FirewallState"]
