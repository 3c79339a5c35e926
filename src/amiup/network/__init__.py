"""AMI network: discrete-event simulator, link profiles, CoAP transport, and the meter adapter."""
