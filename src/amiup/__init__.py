"""amiup: secure local and remote firmware upgrade of smart meters (NEMA SG-AMI 1)."""

__version__ = "0.1.0"

COMPONENTS: tuple[str, ...] = ("metrology", "ami_app", "ami_comm", "han_app", "han_comm")
"""The five independently upgradable components of SG-AMI 1, in a fixed order."""
