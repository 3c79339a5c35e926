"""AMI network profiles: link figures for RF mesh, PLC and cellular, and where they come from.

Figures are deliberately round and conservative; they set the scale of the simulation, not a
promise about a product. Sources (restated, see docs/network.md):

* ``rf-mesh`` -- Wi-SUN FAN 1.x (IEEE 802.15.4g/e FSK/OFDM): PHY modes of 50 to 300 kbps;
  150 kbps is a common operating mode. About 75% of the airtime is usable after MAC overhead,
  channel hopping and CSMA back-off (architecture.md). Meshes of 1 to 6 hops with about 1000
  meters per border router (collector) are typical of utility deployments. Per-hop latency
  (CSMA + unicast schedule) tens of milliseconds.
* ``plc`` -- G3-PLC in the CENELEC-A band (35.9-90.6 kHz): 5 to 45 kbps raw depending on
  modulation (ROBO..D8PSK); 30 kbps as a middle value, 1 to 4 hops, about 300 meters per
  data concentrator (one LV transformer area). Usable share taken as 60%: PLC CSMA/CA and
  the long frames of robust modulations cost more than RF.
* ``cellular`` -- LTE-M / NB-IoT class modules: each meter has its own link of ~100 kbps
  application throughput, one hop, no shared cell and no multicast usable by the utility.
  Modelled as one "cell" per meter.

``overhead`` is the protocol overhead ``o`` of architecture.md per block: MAC + 6LoWPAN/IPv6 +
UDP + CoAP + the wire message header, divided by the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

from amiup.errors import error


@dataclass(frozen=True, slots=True)
class Profile:
    """One network technology: link rates, topology shape and default impairments."""

    name: str
    phy_bps: float
    usable_share: float
    hop_weights: tuple[float, ...]  # share of meters at hop depth 1, 2, ...
    meters_per_cell: int
    hop_latency_s: float
    block_size: int
    frame_overhead: int  # bytes of headers per frame (MAC..CoAP + wire header)
    default_loss: float
    multicast: bool = True
    shared_cell: bool = True

    @property
    def c_eff_bps(self) -> float:
        """Usable capacity of one cell (or one meter link for cellular), bits per second."""
        return self.phy_bps * self.usable_share

    @property
    def max_hops(self) -> int:
        return len(self.hop_weights)

    @property
    def overhead(self) -> float:
        """Protocol overhead ``o`` per data block."""
        return self.frame_overhead / self.block_size

    @property
    def mean_hops(self) -> float:
        total = sum(self.hop_weights)
        return sum((i + 1) * w for i, w in enumerate(self.hop_weights)) / total


PROFILES: dict[str, Profile] = {
    "rf-mesh": Profile(
        name="rf-mesh",
        phy_bps=150_000,
        usable_share=0.75,
        hop_weights=(0.15, 0.25, 0.25, 0.17, 0.11, 0.07),
        meters_per_cell=1000,
        hop_latency_s=0.03,
        block_size=1024,
        frame_overhead=64,
        default_loss=0.02,
    ),
    "plc": Profile(
        name="plc",
        phy_bps=30_000,
        usable_share=0.60,
        hop_weights=(0.40, 0.30, 0.20, 0.10),
        meters_per_cell=300,
        hop_latency_s=0.10,
        block_size=512,
        frame_overhead=64,
        default_loss=0.05,
    ),
    "cellular": Profile(
        name="cellular",
        phy_bps=100_000,
        usable_share=1.0,
        hop_weights=(1.0,),
        meters_per_cell=1,
        hop_latency_s=0.10,
        block_size=1024,
        frame_overhead=80,
        default_loss=0.01,
        multicast=False,
        shared_cell=False,
    ),
}


def profile(name: str) -> Profile:
    """The profile called ``name`` (``invalid-argument`` if unknown)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise error("invalid-argument", f"unknown profile {name!r}; one of {sorted(PROFILES)}") from None
