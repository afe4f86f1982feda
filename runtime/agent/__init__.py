"""The guest agent: PID 1 in each runvm VM. Standard library only (it runs from the guest's Python) besides
runtime.wire, which the guest image carries with it: the agent is runtime.agent in the guest as on the host."""
