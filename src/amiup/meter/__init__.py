"""The reference smart meter: two slots per component, crash-consistent storage, live
metrology, a sans-I/O upgrade agent with trial and automatic revert, and a local port."""

from amiup.meter.agent import STATES
from amiup.meter.device import Accept, Alarm, Event, Meter, MeterConfig, transfer_id
from amiup.meter.firmware import make_image
from amiup.meter.provision import provision
from amiup.meter.report import ComponentStatus, LocalUpgrade, StatusReport, verify_report
from amiup.meter.storage import DirStorage, MemoryStorage, PowerLoss, Storage

__all__ = [
    "STATES", "Accept", "Alarm", "ComponentStatus", "DirStorage", "Event", "LocalUpgrade",
    "MemoryStorage", "Meter", "MeterConfig", "PowerLoss", "StatusReport", "Storage",
    "make_image", "provision", "transfer_id", "verify_report",
]
