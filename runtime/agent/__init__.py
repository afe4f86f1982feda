"""The guest agent: PID 1 in each runvm VM. Standard library only (it runs from the guest's Python)."""
